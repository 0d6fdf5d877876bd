"""Every public function of tfkit (named in a module's `__all__`), and every public method of
a public class, has type hints on its parameters and its return value."""

import importlib
import inspect
import pkgutil

import tfkit

KERAS_HOOKS = {"get_config", "from_config", "call", "build", "compute_output_shape"}


def _public_callables():
    for info in pkgutil.walk_packages(tfkit.__path__, "tfkit."):
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name, None)
            if getattr(obj, "__module__", None) != info.name:  # re-exported: checked at home
                continue
            if inspect.isfunction(obj):
                yield f"{info.name}.{name}", obj
            elif inspect.isclass(obj):
                for attr, fn in vars(obj).items():
                    if inspect.isfunction(fn) and attr not in KERAS_HOOKS and (
                            attr == "__init__" or not attr.startswith("_")):
                        yield f"{info.name}.{name}.{attr}", fn


def test_public_functions_are_type_hinted():
    missing = []
    for qualname, fn in _public_callables():
        sig = inspect.signature(fn)
        for p in sig.parameters.values():
            if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) \
                    and p.annotation is inspect.Parameter.empty:
                missing.append(f"{qualname}({p.name})")
        if sig.return_annotation is inspect.Signature.empty and not qualname.endswith("__init__"):
            missing.append(f"{qualname} -> ?")
    assert not missing, missing
