"""Datasets (embedded CIFAR-10 subset, ImageFolder trees with class lists) and paired batches."""
