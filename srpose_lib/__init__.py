"""srpose: a notebook-first reproduction of *Synthetic-to-Real Pose Estimation with
Geometric Reconstruction* (Lin, Gu, Yang, Yao, NeurIPS 2023).

The library holds every reusable piece; the notebooks in ``notebooks/`` import it.
"""

__version__ = "0.1.0"
