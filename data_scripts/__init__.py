"""Download and prepare the real datasets: ``python -m data_scripts.<name> --data-dir DIR``.

One script per dataset (``rhd``, ``h3d``, ``freihand``, ``mvhand``, ``surreal``, ``human36m``,
``lsp``, ``pw3d``), the shared command line, download, verification and prepare loop in
:mod:`data_scripts.common`, and ``python -m data_scripts.check --data-dir DIR`` for a report
on every registered dataset. See ``data_scripts/README.md``. Never run by CI (the tests use fixtures).
"""
