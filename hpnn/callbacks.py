"""Callbacks, as ``keras.callbacks``."""

from hpnn.training.callbacks import (
    Callback,
    CallbackList,
    EarlyStopping,
    History,
    LambdaCallback,
    ProgbarLogger,
)
from hpnn.training.callbacks_extra import (
    CSVLogger,
    LearningRateScheduler,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from hpnn.training.checkpoint import BackupAndRestore, ModelCheckpoint
from hpnn.training.tensorboard import TensorBoard

__all__ = [
    "BackupAndRestore",
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ProgbarLogger",
    "ReduceLROnPlateau",
    "TensorBoard",
    "TerminateOnNaN",
]
