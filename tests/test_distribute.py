"""``--strategy`` and ``--mixed-precision`` work for every train script.

Distribution (tests/distribution_check.py): the same tiny run trained on one device and on two replicas of one
process logs the same losses and ends with the same weights. Every model runs on two replicas, which checks its own
train step's scaling: the GANs and the CVAE here, the DDIM, the autoencoder and the latent DDIM in
tests/test_distribute_diffusion.py (two files, so that the two pytest workers share them). The two workers, whose loop
and cluster code is the same for every model, run for two models: a GAN here (Pix2Pix: two optimizers, dropout) and
the latent DDIM there (EMA weights, a frozen autoencoder, sampling noise).
"""

import numpy as np
import pytest

import distribution_check as dc
from run_helpers import tiny_args, train_script_names

# trained in tests/test_distribute_diffusion.py; a model added to the registry is checked here
ELSEWHERE = ("ddim", "autoencoder")


@pytest.mark.slow
@pytest.mark.parametrize("script", [s for s in train_script_names() if s not in ELSEWHERE])
def test_two_replicas_and_two_workers_match_one_device(tmp_path, tiny_facades, repo_dir, script):
    workers = script == "pix2pix"
    runs = dc.train_on_strategies(script, tmp_path, tiny_facades, repo_dir, workers=workers)
    dc.assert_strategies_match_one_device(script, runs)
    if workers:
        dc.assert_workers_left_no_temporary_files(tmp_path)


# ------------------------------------------------------------------------------------- mixed precision

def _layers(layer):
    """``layer`` and every layer inside it (networks held by a model, layers of a functional network)."""
    yield layer
    for inner in getattr(layer, "layers", []):
        yield from _layers(inner)


def _rows(logs):
    return {k: float(v) for k, v in logs.items()}


# Models known to break under the mixed policies, with why (strict: the test fails once they are fixed, so the
# entry gets removed).
MIXED_PRECISION_BROKEN = {}  # script -> reason, for a model known to fail (strict xfail: fixed models fail it)


# The models whose check takes 15-22 s here (three builds, six eager steps, a sampled translation): slow tier.
MIXED_PRECISION_SLOW = ("ddim", "cyclegan", "autoencoder")


def _mixed_params():
    def marks(script):
        broken = [pytest.mark.xfail(reason=MIXED_PRECISION_BROKEN[script], strict=True)] \
            if script in MIXED_PRECISION_BROKEN else []
        return broken + ([pytest.mark.slow] if script in MIXED_PRECISION_SLOW else [])

    return [pytest.param(s, marks=marks(s)) for s in train_script_names()]


@pytest.mark.parametrize("script", _mixed_params())
def test_mixed_precision_computes_in_half_and_keeps_float32_losses(tiny_facades, script):
    """Under each policy the model computes in that dtype, keeps float32 variables, outputs and losses, wraps
    its optimizers for loss scaling under float16, trains without overflow, and its losses at the same weights
    and data match float32 within half precision's error (bfloat16 keeps 8 bits of mantissa: ~0.4% per value)."""
    import keras

    from data.pipeline import to_model_range
    from data.sources import open_source
    from train_scripts.training.config import build_parser, resolve_config
    from train_scripts.training.devices import build_model
    from train_scripts.training.registry import spec_for

    spec = spec_for(script)
    config = resolve_config(spec, build_parser(spec).parse_args(tiny_args(script, tiny_facades)))[0]
    pairs = open_source(str(tiny_facades)).load("val", 32)
    batch = (to_model_range(pairs.labels[:2]), to_model_range(pairs.photos[:2]))
    losses = {}
    for precision, compute in (("none", "float32"), ("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")):
        keras.utils.set_random_seed(0)
        model = build_model(spec, dict(config, mixed_precision=precision))
        assert keras.mixed_precision.dtype_policy().name == "float32"  # the global policy is restored after building
        computes = {layer.compute_dtype for layer in _layers(model) if layer.weights}
        assert compute in computes, f"{precision}: layers compute in {computes}"
        assert {v.dtype for v in model.trainable_variables} == {"float32"}
        optimizers = [o for o in vars(model).values() if isinstance(o, keras.optimizers.Optimizer)]
        optimizers += [model.optimizer] if isinstance(model.optimizer, keras.optimizers.Optimizer) else []
        assert optimizers and all(isinstance(o, keras.optimizers.LossScaleOptimizer) == (compute == "float16")
                                  for o in optimizers)
        assert model.translate(batch[0]).dtype == "float32"
        losses[precision] = _rows(model.test_step(batch))
        for _ in range(2):
            logs = model.train_step(batch)
            assert all(v.dtype == "float32" and np.isfinite(float(v)) for v in logs.values()), (precision, logs)
    for precision in ("mixed_bfloat16", "mixed_float16"):
        for name, value in losses["none"].items():
            if not name.endswith("acc"):  # an accuracy counts signs of logits near 0: it may flip
                np.testing.assert_allclose(losses[precision][name], value, rtol=0.03, atol=0.01,
                                           err_msg=f"{script} {precision}: {name}")
