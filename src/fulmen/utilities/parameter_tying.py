"""Find parameters that several modules share (tied weights), and tie them again after a move.

Moving a module to another device or wrapping it can silently untie shared parameters; calling
`set_shared_parameters` with the groups found before restores the ties.
"""

from __future__ import annotations

from torch import nn

__all__ = ["find_shared_parameters", "set_shared_parameters"]


def find_shared_parameters(module: nn.Module) -> list[list[str]]:
    """Return groups of parameter names that refer to the same tensor, in registration order.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
        >>> net[1].weight = net[0].weight
        >>> find_shared_parameters(net)
        [['0.weight', '1.weight']]
    """
    groups: dict[int, list[str]] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def _owner_and_attribute(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, attribute = name.rpartition(".")
    return (module.get_submodule(path) if path else module), attribute


def set_shared_parameters(module: nn.Module, shared_params: list[list[str]]) -> nn.Module:
    """Make every name in each group of `shared_params` refer to the group's first parameter.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
        >>> net = set_shared_parameters(net, [["0.weight", "1.weight"]])
        >>> net[0].weight is net[1].weight
        True
    """
    for names in shared_params:
        owner, attribute = _owner_and_attribute(module, names[0])
        source = getattr(owner, attribute)
        for name in names[1:]:
            target_owner, target_attribute = _owner_and_attribute(module, name)
            setattr(target_owner, target_attribute, source)
    return module
