"""Federated learning on TensorFlow Federated: runtime ownership and FedMD.

`tfkit.federated.runtime` starts and owns TFF's C++ `worker_binary` processes.
"""
