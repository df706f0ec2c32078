//go:build linux

package runtimeapi

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// peerInGroup reports whether the TCP connection c, accepted on loopback,
// was opened by a process of process group pgid: it finds the socket of the
// connection's other end in /proc/net/tcp and looks for it among the open
// files of the group's processes. known is false when /proc cannot tell.
func peerInGroup(c net.Conn, pgid int) (in, known bool) {
	local, ok1 := c.LocalAddr().(*net.TCPAddr)
	remote, ok2 := c.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 || local.IP.To4() == nil {
		return false, false
	}
	inode, ok := socketInode(remote.Port, local.Port)
	if !ok {
		return false, false
	}
	target := "socket:[" + inode + "]"
	pids, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return false, false
	}
	for _, dir := range pids {
		if processGroup(dir) != pgid {
			continue
		}
		fds, _ := os.ReadDir(dir + "/fd")
		for _, fd := range fds {
			if link, err := os.Readlink(dir + "/fd/" + fd.Name()); err == nil && link == target {
				return true, true
			}
		}
	}
	return false, true
}

// socketInode finds the inode of the IPv4 socket whose local port is
// localPort and whose remote port is remotePort, both on 127.0.0.1.
func socketInode(localPort, remotePort int) (string, bool) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return "", false
	}
	defer f.Close()
	want := fmt.Sprintf("0100007F:%04X", localPort)
	wantRem := fmt.Sprintf("0100007F:%04X", remotePort)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 9 && fields[1] == want && fields[2] == wantRem {
			return fields[9], true
		}
	}
	return "", false
}

// processGroup reads the process group of the process at dir (/proc/PID),
// or -1.
func processGroup(dir string) int {
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return -1
	}
	// The command name may hold spaces: the fields start after its ")".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return -1
	}
	pg, err := strconv.Atoi(f[2])
	if err != nil {
		return -1
	}
	return pg
}
