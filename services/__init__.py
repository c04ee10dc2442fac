"""Shared services every plugin uses: preprocessing, embeddings, search, training,
the model registry, scheduling and alert delivery. Services never import plugins."""

import logging as _logging


class _KnownNoise(_logging.Filter):
    """Drops transformers' warning about the backbone config's ``loss_type=None``: the suite's heads
    compute their own loss, so the message says nothing a user can act on."""

    def filter(self, record: _logging.LogRecord) -> bool:
        return not str(record.msg).startswith("`loss_type=")


_logging.getLogger("transformers.modeling_utils").addFilter(_KnownNoise())
