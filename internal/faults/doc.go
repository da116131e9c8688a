// Package faults is gpuimg's fault suite: its tests run the gpuimg binary
// as a user would against real components (a private buildkitd, registries
// and HTTP mirrors on 127.0.0.1, a small tmpfs, host roots with real device
// nodes) and break them on purpose: a builder killed or frozen, a registry
// killed, answering 500 or never answering, a full disk, a damaged cache,
// two builds to one file, wrong device nodes, an empty --gpus. Each test
// asserts the exit status, that the message names the thing and the fix,
// and that nothing is left behind. docs/RELIABILITY.md lists the guarantees
// with their tests. The suite lives in one package, apart from the packages
// it exercises, because a fault crosses them: what counts is what the
// command does, end to end.
package faults
