"""The task names and the registry, apart from the tasks themselves: recipe validation reads the names here without
importing a task module (the tasks read recipe sections, so the reverse import would close a cycle)."""

from __future__ import annotations

__all__ = ["TASK_REGISTRY", "BUILTIN_TASK_MODULES", "register_task", "available_tasks"]

TASK_REGISTRY: dict = {}
# modules imported lazily by get_task(), relative to hf_spectralkd.tasks; a missing optional dependency only
# matters for that task
BUILTIN_TASK_MODULES = {"text-classification": ".text", "image-classification": ".image",
                        "token-classification": ".tokens"}


def register_task(name: str):
    def decorator(cls):
        cls.name = name
        TASK_REGISTRY[name] = cls
        return cls

    return decorator


def available_tasks() -> list:
    return sorted(set(TASK_REGISTRY) | set(BUILTIN_TASK_MODULES))
