"""Layers with Keras 3 names: ``hpnn.layers.Dense`` is ``keras.layers.Dense``."""

from hpnn.layers.activation import ELU, LeakyReLU, PReLU, ReLU, Softmax
from hpnn.layers.attention import AdditiveAttention, Attention, MultiHeadAttention
from hpnn.layers.base import Layer
from hpnn.layers.bidirectional import Bidirectional
from hpnn.layers.conv import (
    AveragePooling2D,
    AvgPool2D,
    Conv1D,
    Conv2D,
    Conv2DTranspose,
    DepthwiseConv2D,
    MaxPool2D,
    MaxPooling2D,
    SeparableConv2D,
)
from hpnn.layers.conv1d_transpose import Conv1DTranspose
from hpnn.layers.conv3d import (
    AveragePooling3D,
    AvgPool3D,
    Conv3D,
    GlobalAveragePooling3D,
    GlobalAvgPool3D,
    GlobalMaxPool3D,
    GlobalMaxPooling3D,
    MaxPool3D,
    MaxPooling3D,
)
from hpnn.layers.conv_lstm import ConvLSTM2D
from hpnn.layers.core import (
    Activation,
    ActivityRegularization,
    Dense,
    Dropout,
    Flatten,
    Identity,
    Input,
    InputLayer,
    Lambda,
    Masking,
    SpatialDropout1D,
    SpatialDropout2D,
)
from hpnn.layers.embedding import Embedding
from hpnn.layers.merge import (
    Add,
    Average,
    Concatenate,
    Divide,
    Dot,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    dot,
    maximum,
    minimum,
    multiply,
    subtract,
)
from hpnn.layers.normalization import (
    BatchNormalization,
    GroupNormalization,
    LayerNormalization,
    UnitNormalization,
)
from hpnn.layers.pooling import (
    AveragePooling1D,
    AvgPool1D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPool1D,
    MaxPooling1D,
)
from hpnn.layers.recurrent import GRU, LSTM, SimpleRNN
from hpnn.layers.reshaping import Permute, RepeatVector, Reshape, TimeDistributed
from hpnn.layers.spatial import (
    CenterCrop,
    Cropping2D,
    Normalization,
    Rescaling,
    Resizing,
    UpSampling2D,
    ZeroPadding2D,
)

__all__ = [
    "ELU",
    "GRU",
    "LSTM",
    "Activation",
    "ActivityRegularization",
    "AdditiveAttention",
    "Attention",
    "AveragePooling1D",
    "AveragePooling2D",
    "AvgPool1D",
    "AvgPool2D",
    "BatchNormalization",
    "Bidirectional",
    "CenterCrop",
    "Conv1D",
    "Conv2D",
    "Dense",
    "DepthwiseConv2D",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GroupNormalization",
    "Identity",
    "Input",
    "InputLayer",
    "Layer",
    "LayerNormalization",
    "LeakyReLU",
    "Masking",
    "MaxPool1D",
    "MaxPool2D",
    "MaxPooling1D",
    "MaxPooling2D",
    "PReLU",
    "Permute",
    "ReLU",
    "RepeatVector",
    "Reshape",
    "Resizing",
    "SeparableConv2D",
    "SimpleRNN",
    "Softmax",
    "TimeDistributed",
    "UnitNormalization",
]

from hpnn.layers.augmentation import (
    GaussianDropout,
    GaussianNoise,
    RandomContrast,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
)

__all__ += [
    "GaussianDropout",
    "GaussianNoise",
    "RandomContrast",
    "RandomFlip",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
]

__all__ += [
    "Add",
    "Average",
    "Concatenate",
    "Maximum",
    "Minimum",
    "Multiply",
    "Subtract",
    "add",
    "average",
    "concatenate",
    "maximum",
    "minimum",
    "multiply",
    "subtract",
]

__all__ += ["Cropping2D", "Rescaling", "UpSampling2D", "ZeroPadding2D"]

__all__ += ["Conv1DTranspose", "Conv2DTranspose"]

__all__ += [
    "AveragePooling3D",
    "AvgPool3D",
    "Conv3D",
    "ConvLSTM2D",
    "GlobalAveragePooling3D",
    "GlobalAvgPool3D",
    "GlobalMaxPool3D",
    "GlobalMaxPooling3D",
    "MaxPool3D",
    "MaxPooling3D",
]

__all__ += ["SpatialDropout1D", "SpatialDropout2D"]

__all__ += ["MultiHeadAttention"]

__all__ += ["Normalization"]

__all__ += ["Dot", "dot"]

__all__ += ["Lambda"]

__all__ += ["Divide"]
