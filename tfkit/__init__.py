"""tfkit: five Google Research papers as reusable TensorFlow/Keras software.

Subpackages are imported on demand (TensorFlow Federated alone takes ~20 s to import):

    import tfkit.datasets as datasets
    from tfkit.layers import TopKActivation
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
