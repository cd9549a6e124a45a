// Package redfish is the manager's client for a BMC's Redfish service: it
// logs in, reads the BMC's inventory and update capabilities, starts a
// firmware update (SimpleUpdate pulling an image from the manager, or a
// multipart or raw HTTP push of the image), follows the update to its end,
// and logs out.
//
// It wraps github.com/stmcginnis/gofish for the typed Redfish resources
// (Manager, SoftwareInventory, ComputerSystem, UpdateService), over an HTTP
// client of its own that enforces what a BMC must be assumed capable of:
// every request goes to the configured endpoint only (a Location, an
// @odata.id or a redirect naming another host is refused), every response
// body is bounded, every request has a deadline, and TLS uses the caller's
// pinning configuration unchanged. Logging in, the update requests and
// uploads, the collections and the polling of a running update are this
// package's own code rather than gofish's: gofish takes the password as a
// string (it could not be zeroed), buffers a multipart upload whole in
// memory, reads error bodies without a bound, returns a collection's members
// in the order they arrived rather than the collection's, and its
// WaitForTaskMonitor gives up at the first error, which is exactly what a
// BMC resetting in the middle of its own update produces.
//
// Wait is therefore written here. It follows a DMTF task (or a Dell job, or
// HPE's UpdateService state machine), and when the BMC stops answering it
// waits for the service to come back, logs in again when the old session
// died with the reset, finds a Dell job that moved from the TaskService to
// the Manager's (or the JobService's) Jobs, and goes on; it distinguishes an
// update the BMC says failed (*UpdateError, with the BMC's own messages), a
// BMC that never came back (*ResetTimeoutError), and a BMC that no longer
// says what happened (ErrOutcomeUnknown: read the version back).
//
// A Client is safe for concurrent use. Close it: it deletes the session on
// the BMC (BMCs have few session slots) even when the context of the run
// has been cancelled.
package redfish
