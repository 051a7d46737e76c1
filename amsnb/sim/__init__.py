"""Simulations writing ROOT files in the amsnb schema: ECAL showers (``ecal``, validated in ``ecal_validation``)
and nuclei in the tracker (``nuclei``)."""
