//go:build !linux

package runtimeapi

import "net"

// peerInGroup cannot tell the peer's process outside Linux.
func peerInGroup(c net.Conn, pgid int) (in, known bool) { return false, false }
