"""A model's own settings, declared once: a dataclass whose fields hold each setting's default, its flag's help and
choices (:func:`setting`). The model's flags (:func:`flags`, read by ``config.build_parser``), its presets' starting
values (:func:`defaults`), the settings of a saved config (:func:`from_config`, older runs included) and its
constructor's keyword arguments (:func:`arguments_for`) all derive from that one declaration.
"""

import dataclasses
import inspect


def setting(default, help, choices=None, parse=None):
    """A field of a settings dataclass: its ``default``, the flag's ``help`` and ``choices``, and ``parse``, the
    flag's type where the annotation is not one (``widths_list``). A default of None leaves the key out of a preset's
    config: a preset or a flag gives it (the DDIM's ``latent``)."""
    metadata = {"help": help, "choices": tuple(choices) if choices else None, "parse": parse}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flags(settings):
    """The flags of a settings dataclass, in its order: ``{key: (type, help[, choices])}``."""
    out = {}
    for field in dataclasses.fields(settings):
        choices = field.metadata["choices"]
        out[field.name] = (field.metadata["parse"] or field.type, field.metadata["help"]) + ((choices,) if choices
                                                                                            else ())
    return out


def defaults(settings):
    """The defaults of a settings dataclass as config entries (plain data), without those whose default is None."""
    return {key: value for key, value in dataclasses.asdict(settings()).items() if value is not None}


def from_config(settings, config):
    """The settings of a run's ``config``; a key the config lacks (a run saved before that setting existed) takes the
    setting's default, which is what such runs trained with."""
    return settings(**{field.name: config[field.name] for field in dataclasses.fields(settings)
                       if field.name in config})


def arguments_for(settings, function, **values):
    """Keyword arguments of ``function`` (a class: its constructor) from the fields of ``settings`` that share a
    parameter's name; ``values`` add arguments or replace some."""
    if inspect.isclass(function):
        function = function.__init__
    parameters = inspect.signature(function).parameters
    named = {field.name: getattr(settings, field.name) for field in dataclasses.fields(settings)
             if field.name in parameters}
    return {**named, **values}
