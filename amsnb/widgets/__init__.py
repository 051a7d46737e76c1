"""Jupyter widgets of amsnb, one module each, imported explicitly (they pull in ipywidgets and matplotlib):

- ``amsnb.widgets.shower_browser.ShowerBrowser``: step through ECAL events (views, profiles, variables).
- ``amsnb.widgets.cut_explorer.CutExplorer``: move a cut's bounds with sliders; cut flow and N-1 plot follow.
- ``amsnb.widgets.threshold_tuner.ThresholdTuner``: choose a working point (threshold or target efficiency, energy
  range, model, set) with a live rejection readout; saves a working-point JSON.

This package module itself imports nothing heavy.
"""
