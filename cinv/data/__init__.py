"""Data: datasets by spec (``datasets``: the embedded CIFAR-10 subset, ImageFolder trees with class
lists, torchvision's CIFAR/STL files; ``mnist``: MNIST digits; ``synthetic_mnist``: FCL's corner-digit MNIST), batches of
paired clean and corrupted views (``stream``), and SimCLR's augmentations on whole batches
(``augment``)."""

from cinv.data import datasets, mnist, synthetic_mnist  # noqa: F401  (they register ``mnist`` and ``synthetic_mnist``)
