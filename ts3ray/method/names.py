"""Names of the methods and protocols as plain data (no torch), for the config checks and
the torch-free result layer; the registry (registry.py) checks that it matches them."""

# Methods inside IMP, in the row order of the paper's Tables I-III: the baseline (plain CE),
# the competitors, TS3-Net.
METHOD_NAMES = ("ce", "sce", "apl", "mae", "itlm", "coteaching", "jocor", "dividemix", "ts3net")

# The methods the TS3 paper itself ran inside IMP (Sec. IV-C-4, Figs. 7-10). JoCoR and
# DivideMix inside IMP are ts3ray's extension of the paper's protocol.
IN_PAPER_IMP = ("ce", "sce", "apl", "mae", "itlm", "coteaching", "ts3net")

# How a method is trained (method/protocols.py):
PROTOCOLS = {
    "published": "each method with its authors' optimiser, schedule, batch size, "
                 "initialisation and constants in the units they were tuned in",
    "code": "published, plus the behaviours of the authors' released code where it differs "
            "from their paper (TS3-Net: the official code's refinement loss, dense reset, "
            "entropy scale, own small-loss term, parity alternation and learning rate)",
    "shared": "the run's SGD schedule for every method (lr, momentum, weight_decay, "
              "batch_size, lr_decay_* as set, TS3-Net's Sec. IV-A by default)",
    "controlled": "the shared SGD, with each method's optimiser-coupled constants re-tuned "
                  "on validation data under an equal budget (sweeps/compare.py --protocol "
                  "controlled)",
}
