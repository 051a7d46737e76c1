"""Alignment methods x seeds on the ECAL study (issue 25): does any method give back the rejection the MC-trained
model loses on ISS-like data, beyond the spread between two trainings of one request?

For each method (``"none"``: source-only, then ``TrainConfig.alignment`` values) and seed, one training through
:func:`amsnb.ecal.experiment.train_model` (a finished training of the same request is reused) under the tag
``<model_tag>_s<seed>``, and on the full ``mc_test`` / ``iss_test`` sets: the rejection at ``efficiency`` with each
set's own threshold, the electron efficiency that the threshold fixed on ``mc_test`` keeps on ``iss_test``, and the
fresh feature probe's AUC (mc_test vs iss_test, :func:`amsnb.ecal.experiment.domain_study`). The model kept is the
labeled choice (early stopping on ``iss_val``); each epoch is also scored by the unlabeled scorers of
:mod:`amsnb.train.selection` (MC source validation: a ``selection_events`` sample of ``mc_test``; target: the DA
target set), and the rejection on a ``selection_events`` sample of ``iss_test`` says where each scorer's epoch lands
next to the labeled one. :func:`amsnb.tables.seed_summary` gives mean and spread over seeds, source-only first.
"""

from __future__ import annotations

import dataclasses

from ..workdir import Workdir

METHODS = ("none", "dann", "coral", "mmd", "cdan")
#: The per-run figures :func:`amsnb.tables.seed_summary` averages over seeds.
FIGURES = ("mc_test_rejection", "iss_test_rejection", "mc_threshold_iss_efficiency", "probe_auc",
           "iwv_minus_labeled", "dev_minus_labeled")


def method_config(config, method: str, seed: int):
    """The TrainConfig of one comparison run: ``"none"`` is the config without DA, any other name its alignment."""
    from ..train.losses import ALIGNMENTS

    if method != "none" and method not in ALIGNMENTS:
        from ..errors import ConfigError

        raise ConfigError(f"compare_methods: '{method}' is not a method; use none or one of {', '.join(ALIGNMENTS)}")
    return dataclasses.replace(config, use_da=method != "none", alignment="dann" if method == "none" else method,
                               seed=int(seed))


def compare_alignments(wd: Workdir, data, model: str, preset: str, config, methods=METHODS, seeds=(1, 2, 3),
                       device: str = "cpu", efficiency: float = 0.9, selection_events: int = 20000) -> list[dict]:
    """One row per (method, seed): the figures above plus the epoch each selection picks (see the module
    docstring). ``data``: :func:`amsnb.ecal.experiment.prepare`'s sets; ``config``: the notebook's TrainConfig."""
    from ..metrics import rejection_at_efficiency, rejection_at_threshold, threshold_for_efficiency
    from ..train.selection import EpochPredictions, selection_summary, selection_table
    from ..train.trainer import predict
    from .experiment import domain_study, model_tag, train_model

    mc, iss = data.evaluation["mc_test"], data.evaluation["iss_test"]
    sel_source, sel_test = mc.subset(selection_events, seed=0), iss.subset(selection_events, seed=0)
    rows = []
    for method in methods:
        for seed in seeds:
            cfg = method_config(config, method, seed)
            tag = model_tag(model, preset, cfg.use_da, data.request.get("train_set", "mc_high"),
                            data.request.get("val_set", "iss"), cfg.alignment) + f"_s{seed}"
            ep = {}

            def watch(net, ep=ep):
                ep["cb"] = EpochPredictions(net, sel_source, data.target, device=device, seed=0,
                                            extra={"iss_test": sel_test})

            result = train_model(wd, tag, model, preset, data, cfg, seed=seed, on_model=watch,
                                 callbacks=[lambda h, ep=ep: ep["cb"](h)])
            result.model.to(device)
            pm, pi = predict(result.model, mc, 512, device), predict(result.model, iss, 512, device)
            thr = threshold_for_efficiency(pm["score"], pm["label"], None, efficiency)
            row = {"method": method, "seed": int(seed), "tag": tag, "best_epoch": result.best_epoch,
                   "mc_test_rejection": rejection_at_efficiency(pm["score"], pm["label"], None, efficiency).rejection,
                   "iss_test_rejection": rejection_at_efficiency(pi["score"], pi["label"], None, efficiency).rejection,
                   "mc_threshold_iss_efficiency": rejection_at_threshold(pi["score"], pi["label"], None,
                                                                         thr).efficiency,
                   "probe_auc": domain_study(result.model, mc, iss, device, seed=0,
                                             head_trained=False)["metrics"]["probe_auc"]}
            cb = ep.get("cb")
            if cb is not None and cb.candidates:  # a reused finished run has no per-epoch predictions
                labeled = {int(h["epoch"]): h.get("rejection", float("nan")) for h in result.history}
                test = {e: rejection_at_efficiency(x["iss_test"]["score"], x["iss_test"]["label"], None,
                                                   efficiency).rejection for e, x in cb.extra.items()}
                labeled = {e: v for e, v in labeled.items() if e in test}
                summary = selection_summary(selection_table(cb.candidates), labeled, test)
                row["selection"] = summary
                for r in summary:
                    row[f"{r['scorer']}_epoch"] = r["chosen"]
                    row[f"{r['scorer']}_minus_labeled"] = r["test_minus_labeled"]
            rows.append(row)
    return rows
