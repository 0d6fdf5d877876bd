"""FedMD with three heterogeneous Keras models of your own, simulated on TFF.

    uv run python examples/fedmd.py          # embedded scikit-learn digits, about a minute

Public data: digits 0-4 (every party holds them); private data: a few examples of digits 5-9
per party; each party's model is its own architecture. Only class scores on the public
alignment set are shared.

The local TFF worker listens on 127.0.0.1 only (tfkit preloads a small bind() shim, built once
with `cc`; without a C compiler it listens on every interface and tfkit warns: see
docs/fedmd.md, Security).
"""

import numpy as np

from tfkit.backend import keras, set_seed
from tfkit.federated import runtime
from tfkit.federated.fedmd import Party, build_fedmd_process, client_arrays, digits_split

set_seed(0)
data = digits_split(num_parties=3, samples_per_class=5)  # 16x16 images, labels 0-9


def mlp():
    return keras.Sequential([keras.Input((16, 16)), keras.layers.Flatten(),
                             keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])


def small_cnn(filters):
    return keras.Sequential([keras.Input((16, 16)), keras.layers.Reshape((16, 16, 1)),
                             keras.layers.Conv2D(filters, 3, activation="relu"),
                             keras.layers.MaxPooling2D(), keras.layers.Flatten(),
                             keras.layers.Dense(10)])  # logits: no softmax


parties = []
models = [mlp(), small_cnn(8), small_cnn(16)]  # three different architectures
for i, (cid, model) in enumerate(zip(data.party_ids, models, strict=True)):
    x, y = client_arrays(data.private, cid)  # the party's private tff ClientData
    party = Party(cid, model, x, y, private_batch_size=5, seed=i)
    party.fit_labels(data.public_x, data.public_y, epochs=5, batch_size=32)  # transfer learning
    party.train_private(epochs=10)
    parties.append(party)
round0 = [p.accuracy(data.test_x, data.test_y) for p in parties]

process = build_fedmd_process(parties, data.public_x, alignment_size=300,
                              test_data=(data.test_x, data.test_y))
with runtime.local_context():  # or runtime.remote_context(["host1:8000", "host2:8000"])
    state = process.initialize()
    for _ in range(3):
        state, metrics = process.next(state)
        print(f"round {int(state['round'])}: accuracy {np.round(metrics['accuracy'], 3)}, "
              f"{int(metrics['bytes_up'])} bytes up")
print(f"mean accuracy: round 0 {np.mean(round0):.3f} -> {np.mean(metrics['accuracy']):.3f}")
