"""The ECAL electron/proton study of seed 000, on the core of amsnb.

Submodules (imported explicitly; this module imports nothing heavy):

- ``sim`` the physics-based fast simulation (GFLASH electrons, hadronic protons, mc/iss domains, Table-1 preset)
  and ``validation``, its checks against published figures;
- ``reco`` shower-shape variables from any 18x72 cell stack (the simulation and user files share it);
- ``datasets`` the selected Table-1 sets plus ``mc_test`` and their manifest;
- ``cache`` the memory-mapped training cache;
- ``baselines`` the ECAL BDT and likelihood;
- ``experiment`` the e/p experiment around :func:`amsnb.train.fit` (sets -> caches -> models -> scores);
- ``plots`` event displays, profiles and validation figures;
- ``shower_browser``, ``cut_explorer`` the study's widgets; ``train_cli`` ``amsnb train --config``.
"""
