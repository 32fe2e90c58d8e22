//! End-to-end tests with several real nodes on loopback and in network
//! namespaces live here once the node exists. The protocol's own tests are
//! in `protocol/tests/` and its conformance check in `protocol/conformance/`.
