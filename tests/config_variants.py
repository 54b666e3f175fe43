"""The config files' variants the suite covers: every model of every family at every size.

Shared by the config tests (each variant resolves) and the contract tests (every block a
config builds keeps the temporal-layer contract).
"""

FAMILIES = {
    "shakespeare": (("mingru", "minlstm", "gru", "lstm", "mamba", "transformer"),
                    ("paper", "cpu")),
    "selective_copy": (("mingru", "minlstm"), ("paper", "short", "cpu")),
    "formal_languages": (("mingru", "minlstm", "transformer"), ("paper", "cpu")),
    "enwik8": (("srupp", "mingru", "minlstm"), ("paper", "gpu", "cpu")),
    "wikitext103": (("srupp", "mingru"), ("paper", "gpu", "cpu")),
    "d4rl": (("hopper-medium,mingru", "walker2d-medium-expert,minlstm",
              "halfcheetah-medium-replay,transformer"), ("paper", "cpu")),
    "listops": (("full,mingru", "no_conv,minlstm", "no_mlp,mingru", "no_conv_no_mlp,minlstm"),
                ("paper", "cpu")),
}
VARIANTS = [(family, f"{model},{size}") for family, (models, sizes) in FAMILIES.items()
            for model in models for size in sizes]
