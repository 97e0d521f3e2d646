"""Callbacks, as ``keras.callbacks``."""

from hpnn.training.callbacks import (
    Callback,
    CallbackList,
    EarlyStopping,
    History,
    LambdaCallback,
    ProgbarLogger,
)
from hpnn.training.checkpoint import BackupAndRestore, ModelCheckpoint

__all__ = [
    "BackupAndRestore",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "ModelCheckpoint",
    "ProgbarLogger",
]
