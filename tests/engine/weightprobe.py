"""A test plugin (``vattfw -p weightprobe``, with tests/engine on PYTHONPATH): the evaluator
``weight_probe`` reports an order-dependent digest of the loaded model's weights, so a test
can tell through `vattfw eval` which weights a checkpoint file put into the model."""
import vattfw
from vattfw import Component


class Config(vattfw.PluginConfig):
    """No fields: the evaluator reads only the model."""


class WeightProbe:
    def run(self, model, spec, host=None):
        import torch
        total, count = 0.0, 0
        for i, (name, value) in enumerate(sorted(model.state_dict().items())):
            if value.is_floating_point():
                total += float((value.double() * (1 + i % 7)).sum())
                count += value.numel()
        return {"weight_probe/digest": total, "weight_probe/values": float(count)}


@vattfw.hookimpl
def vattfw_components():
    return [Component("evaluator", "weight_probe", Config, lambda config, **deps: WeightProbe())]
