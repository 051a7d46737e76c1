"""Model registry: shapes on ECAL images, the CvT-13 parameter count, save/load round trip, config errors."""

from __future__ import annotations

import pytest
import torch

import amsnb.models as M
from amsnb.errors import ConfigError, InputFileError

IMAGES = torch.rand(3, 1, 18, 72) * 200.0  # MeV


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", ["cnn", "cvt", "coatnet"])
def test_tiny_shapes(name):
    torch.manual_seed(0)
    model = M.build(name, "tiny").eval()
    out = model(IMAGES, lambda_=0.5)
    assert out["logits"].shape == (3, 2)
    assert out["domain_logits"].shape == (3, 2)
    assert out["features"].shape == (3, model.feature_extractor.num_features)
    assert torch.isfinite(out["logits"]).all()
    # the model takes raw MeV: the log transform lives inside it and negative noise is clamped
    assert torch.allclose(model(IMAGES.clamp(min=0))["logits"], model(IMAGES - 0 * IMAGES)["logits"])


def test_cvt13_parameter_count():
    """CvT-13 of Wu et al. 2021 with 1 input channel and 2 classes (label path, no domain head).

    With 3 channels and 1000 classes the same code gives 19,997,480 = the Hugging Face microsoft/cvt-13 count
    ("20M" in the paper), which pins the architecture: conv embeddings, dw-conv+BN q/k/v, Linear q/k/v with bias,
    class token in stage 3, final LayerNorm. The count is exact (integer), so the tolerance is zero.
    """
    with torch.device("meta"):  # count without allocating 20 M weights
        model = M.build("cvt", "cvt13")
        big = M.build("cvt", {"preset": "cvt13", "in_chans": 3, "n_classes": 1000, "domain_head": False})
    assert model.label_parameters() == 19_606_978
    assert sum(p.numel() for p in big.parameters()) == 19_997_480


def test_coatnet_tiny_is_small():
    """The tiny preset is meant for 2 CPU cores (~0.3 M parameters)."""
    assert 2e5 < M.build("coatnet", "tiny").label_parameters() < 5e5


@pytest.mark.parametrize("name", ["cnn", "cvt", "coatnet"])
def test_save_load_roundtrip(tmp_path, name):
    torch.manual_seed(1)
    model = M.build(name, {"preset": "tiny", "energy_scale_mev": 7.0}).eval()
    M.save_model(tmp_path / name, model, extra={"note": "test"})
    again = M.load_model(tmp_path / name).eval()
    assert again.amsnb_config == model.amsnb_config
    assert again.amsnb_extra == {"note": "test"}
    with torch.no_grad():
        assert torch.equal(model(IMAGES)["logits"], again(IMAGES)["logits"])


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset"):
        M.build("cvt", "huge")
    with pytest.raises(ConfigError, match="unknown config key"):
        M.build("cnn", {"chanels": (8,)})
    with pytest.raises(ConfigError, match="not registered"):
        M.build("resnet")
    with pytest.raises(InputFileError, match="no model config"):
        M.load_model(tmp_path)


def test_registry_does_not_name_the_wings(tmp_path):
    """'mda' lives in amsnb.nuclei.model: the core registry does not know it until that module is imported; a saved
    MDA records its module in config.json and load_model imports it (only modules of amsnb)."""
    import json
    import subprocess
    import sys

    code = ("import sys, amsnb.models as M; from amsnb.errors import ConfigError\n"
            "assert 'amsnb.nuclei.model' not in sys.modules and 'mda' not in M.available()\n"
            "try:\n    M.build('mda')\nexcept ConfigError:\n    pass\nelse:\n    raise SystemExit('built mda')\n"
            "m = M.load_model(sys.argv[1]); assert 'amsnb.nuclei.model' in sys.modules\n"
            "assert isinstance(m, M.DomainAdversarialModel) and m.amsnb_name == 'mda'")
    import amsnb.nuclei.model  # noqa: F401  (registers "mda")

    M.save_model(tmp_path / "mda", M.build("mda", "small", seed=0))
    assert json.loads((tmp_path / "mda" / "config.json").read_text())["module"] == "amsnb.nuclei.model"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "mda")], check=True, timeout=120)
    meta = json.loads((tmp_path / "mda" / "config.json").read_text())
    meta.update(name="not_registered", module="os")
    (tmp_path / "mda" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="not part of amsnb"):
        M.load_model(tmp_path / "mda")


def test_seeded_build_is_reproducible_across_processes():
    """torch seeds its default generator randomly per process, so an unseeded build differs from run to run (a
    notebook's trained model, and its metrics, with it). ``build(..., seed=)`` must give the same weights in two
    fresh processes, leave the caller's RNG state untouched, and differ between seeds."""
    import subprocess
    import sys

    code = ("import hashlib, torch, amsnb.models as M, amsnb.nuclei.model; state = torch.get_rng_state(); "
            "m = M.build('mda', 'small', seed={seed}); assert torch.equal(state, torch.get_rng_state()); "
            "print(hashlib.md5(torch.cat([p.detach().flatten() for p in m.parameters()]).numpy().tobytes())"
            ".hexdigest())")

    def digest(seed):
        return subprocess.run([sys.executable, "-c", code.format(seed=seed)], check=True, timeout=120,
                              capture_output=True, text=True).stdout.strip()

    first = digest(3)
    assert first and first == digest(3)
    assert digest(4) != first


def test_view_aware_cnn_keeps_the_projections_apart(tmp_path):
    """views=True: each half of the features sees only its own projection's layers (schema.LAYER_VIEW), so changing
    the x-view layers leaves the y-stream features exactly as they were; save/load and ONNX follow."""
    import numpy as np

    from amsnb import export
    from amsnb.schema import X_LAYERS

    model = M.build("cnn", "small_views", seed=0).eval()
    f = model.feature_extractor.num_features
    assert f == 2 * M.build("cnn", "small").feature_extractor.num_features
    other = IMAGES.clone()
    other[:, :, list(X_LAYERS)] *= 3.0
    with torch.no_grad():
        a, b = model(IMAGES)["features"], model(other)["features"]
    assert torch.equal(a[:, : f // 2], b[:, : f // 2]) and not torch.allclose(a[:, f // 2:], b[:, f // 2:])
    M.save_model(tmp_path / "v", model)
    again = M.load_model(tmp_path / "v").eval()
    with torch.no_grad():
        assert torch.equal(again(IMAGES)["logits"], model(IMAGES)["logits"])
    path = export.export_onnx(model, tmp_path / "v.onnx")
    assert export.check_onnx(model, path, IMAGES.numpy().astype(np.float32)) < 1e-4
    with pytest.raises(ConfigError, match="views=True is not available"):
        M.build("cvt", {"preset": "tiny", "views": True})
