"""FedMD (Li & Wang 2019): heterogeneous federated learning by model distillation, on TFF.

    from tfkit.federated import runtime
    from tfkit.federated.fedmd import Party, build_fedmd_process, run_program

See docs/fedmd.md for the design (which work runs in TFF, which on the parties) and deployment.
"""

from tfkit.federated.fedmd.data import (
    FedMDData,
    client_arrays,
    digits_split,
    femnist_letters,
    make_client_data,
)
from tfkit.federated.fedmd.participants import PAPER_CNNS, FedMDCNN, paper_cnn, paper_cnns
from tfkit.federated.fedmd.party import Party
from tfkit.federated.fedmd.process import (
    HostComputation,
    WorkerError,
    alignment_indices,
    build_fedmd_process,
)
from tfkit.federated.fedmd.program import run_program

__all__ = ["FedMDCNN", "PAPER_CNNS", "paper_cnn", "paper_cnns", "Party", "build_fedmd_process",
           "HostComputation", "WorkerError", "alignment_indices", "run_program", "FedMDData",
           "make_client_data", "client_arrays", "femnist_letters", "digits_split"]
