// Package test holds tokend's whole-system tests: in-process clusters
// (test/inproc) driven through the official Vault API client, and the
// multi-process harness. Nothing imports it.
package test
