"""Jupyter widgets of the core, imported explicitly (they pull in ipywidgets and matplotlib):

- ``amsnb.widgets.threshold_tuner.ThresholdTuner``: choose a working point (threshold or target efficiency, energy
  range, model, set) with a live rejection readout on any score files; saves a working-point JSON.

The ECAL study's widgets live in its wing: ``amsnb.ecal.shower_browser.ShowerBrowser`` (step through ECAL events)
and ``amsnb.ecal.cut_explorer.CutExplorer`` (cut bounds on sliders, cut flow and N-1 plot follow).
This package module itself imports nothing heavy.
"""
