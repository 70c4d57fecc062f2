"""Published one-class AUROC (%) per normal class 0-9, printed beside the book's in chapter 10.

The one place the book keeps the figures it compares against; :data:`SOURCES` names the
reference of each (its key in ``book/references.bib``; the chapter cites them). The OCGAN, MNIST
GEOM and ARNet rows are as AGAD's table 1 (Cheng et al.'s and Ye et al.'s tables) reproduces
them; each MNIST row's mean is the one its paper states (97.5, 98.0, 98.3). ARNet's
Fashion-MNIST row averages to 93.82, where the paper states 93.9.
"""

PUBLISHED = {
    "mnist": {
        "DCAE (Ruff et al. 2018)":
            [97.6, 98.3, 85.4, 86.7, 86.5, 78.2, 94.6, 92.3, 86.5, 90.4],
        "AnoGAN (Ruff et al. 2018)":
            [96.6, 99.2, 85.0, 88.7, 89.4, 88.3, 94.7, 93.5, 84.9, 92.4],
        "Deep SVDD (Ruff et al. 2018)":
            [98.0, 99.7, 91.7, 91.9, 94.9, 88.5, 98.3, 94.6, 93.9, 96.5],
        "OCGAN (Perera et al. 2019)":
            [99.8, 99.9, 94.2, 96.3, 97.5, 98.0, 99.1, 98.1, 93.9, 98.1],
        "GEOM (Golan & El-Yaniv 2018)":
            [98.2, 91.6, 99.4, 99.0, 99.1, 99.6, 99.9, 96.3, 97.2, 99.2],
        "ARNet (Ye et al. 2022)":
            [98.6, 99.9, 99.0, 99.1, 98.1, 98.1, 99.7, 99.0, 93.6, 97.8],
    },
    "fashion-mnist": {
        "GEOM (Golan & El-Yaniv 2018)":
            [99.4, 97.6, 91.1, 89.9, 92.1, 93.4, 83.3, 98.9, 90.8, 99.2],
        "ARNet (Ye et al. 2022)":
            [92.7, 99.3, 89.1, 93.6, 90.8, 93.1, 85.0, 98.4, 97.8, 98.4],
    },
}

#: Published means where the book does not carry the paper's per-class values: printed as one
#: figure, in %, beside the per-class tables.
PUBLISHED_MEANS = {
    "mnist": {},
    "fashion-mnist": {},
}

#: The reference each published row or mean is taken from: its key in ``book/references.bib``.
SOURCES = {
    "DCAE (Ruff et al. 2018)": "ruff2018deep",
    "AnoGAN (Ruff et al. 2018)": "ruff2018deep",
    "Deep SVDD (Ruff et al. 2018)": "ruff2018deep",
    "GEOM (Golan & El-Yaniv 2018)": "golan2018deep",
    "OCGAN (Perera et al. 2019)": "perera2019ocgan",
    "ARNet (Ye et al. 2022)": "ye2022attribute",
}
