"""The machinery behind `replication.data`, one file per concern; import the public API from there.

- `sources`:   what the publishers distribute: URLs, file names, sizes and checksums.
- `checks`:    the error type, how faults are worded, checksums, the verification report.
- `idx`:       MNIST-style IDX files (MNIST, Fashion-MNIST): find, check, read.
- `cifar`:     the CIFAR-10 python archive or the folder it unpacks to: find, check, read.
- `download`:  one published file from its mirrors, with a progress bar, into a temporary file.
- `sequences`: images as byte sequences, the validation split, seeded batches.
"""
