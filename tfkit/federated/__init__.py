"""Federated learning on TensorFlow Federated: runtime ownership and FedMD.

`tfkit.federated.workers` starts and owns TFF's C++ `worker_binary` processes;
`tfkit.federated.runtime` runs TFF computations on them (local and remote contexts).
"""
