//! The gateway against a real testnet (node processes) and a real `andromede-gateway`
//! process, driven by the real tools: boto3 scripts (`tests/s3/*.py`) and the aws CLI.
//! Both come from PyPI (`.ci/run` installs them); each compares bytes, not exit codes.

mod harness;
mod tools;
