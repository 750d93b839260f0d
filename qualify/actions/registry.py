"""The action registry: plans name actions; registering a name twice is an error."""

from __future__ import annotations

from qualify.actions.base import Action

_ACTIONS: dict[str, Action] = {}


def register(action: Action) -> Action:
    """Add an action; raise on a duplicate name."""
    if action.name in _ACTIONS:
        raise ValueError(f"action {action.name!r} is already registered")
    _ACTIONS[action.name] = action
    return action


def get_action(name: str) -> Action | None:
    """Return the action called `name`, or None."""
    _load_builtins()
    return _ACTIONS.get(name)


def all_actions() -> list[Action]:
    """Return every registered action, sorted by name."""
    _load_builtins()
    return sorted(_ACTIONS.values(), key=lambda a: a.name)


def _load_builtins() -> None:
    # Imported for its registrations; deferred so the registry module stays import-cycle free.
    import qualify.actions.builtin
    import qualify.actions.dimm
    import qualify.actions.hostmem
    import qualify.actions.ssd  # noqa: F401
