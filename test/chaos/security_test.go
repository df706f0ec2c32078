package chaos

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/test/servers"
)

// listeners returns the local addresses of the TCP sockets that process pid
// listens on, from /proc.
func listeners(t *testing.T, pid int) []string {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, file := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, file))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// sl local_address rem_address st ... inode (index 9)
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] {
				continue
			}
			out = append(out, decodeProcAddr(fields[1]))
		}
		f.Close()
	}
	return out
}

// decodeProcAddr turns /proc/net/tcp's "0100007F:1F90" into "127.0.0.1:8080".
func decodeProcAddr(s string) string {
	hexIP, hexPort, _ := strings.Cut(s, ":")
	b, _ := hex.DecodeString(hexIP)
	// Each 32-bit word is in host (little-endian) order.
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	port, _ := strconv.ParseUint(hexPort, 16, 16)
	return net.JoinHostPort(net.IP(b).String(), strconv.Itoa(int(port)))
}

func TestDecodeProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000:24C8":                         "0.0.0.0:9416",
		"00000000000000000000000001000000:0050": "[::1]:80",
	} {
		if got := decodeProcAddr(in); got != want {
			t.Errorf("decodeProcAddr(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestListenersLoopbackOnly runs esmd with the default server settings and
// checks that every socket it listens on is bound to loopback.
func TestListenersLoopbackOnly(t *testing.T) {
	t.Parallel()
	ep := servers.Kinesalite(t)
	name := servers.UniqueName("listen")
	arn := servers.CreateStream(t, ep, name, 1)
	putRecords(t, ep, name, keyedRecords(1, 5))
	l := newLedger()
	s := newSink(t, func(w http.ResponseWriter, c call) (int, string) {
		l.observe(0, c.Recs)
		return 200, ""
	})
	dir := t.TempDir()
	// No server section: the defaults apply.
	cfg := strings.Replace(baseYAML("    kinesis: "+ep+"\n", dir, s.srv.URL, ""), "server: {listen: \"off\"}\n", "", 1) +
		mappingYAML(arn, "StartingPosition: TRIM_HORIZON\nesmd: {pollInterval: 50ms}")
	p := startESMD(t, dir, cfg)
	waitFor(t, 30*time.Second, "the records", func() bool { return l.unique() == 5 })
	time.Sleep(500 * time.Millisecond) // servers started after the mapping
	ls := listeners(t, p.pid())
	for _, a := range ls {
		host, _, _ := net.SplitHostPort(a)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			t.Errorf("esmd listens on %s, want loopback only", a)
		}
	}
	t.Logf("esmd listens on %v", ls)
	result(t, "security: listeners bind loopback", 1, 5, 0, 0, fmt.Sprintf("%d listeners, all loopback", len(ls)))
}

// TestSecretsNeverInOutput puts known secrets in the credentials, a function
// header and the admin token, makes esmd log at debug through successes,
// function errors and a failure destination, and greps every output for
// them: the run's log, `esmd check` on the file and on a broken copy of it,
// and the failure records.
func TestSecretsNeverInOutput(t *testing.T) {
	t.Parallel()
	ep := servers.Kinesalite(t)
	name := servers.UniqueName("secret")
	arn := servers.CreateStream(t, ep, name, 1)
	putRecords(t, ep, name, keyedRecords(2, 20))
	suffix := strconv.FormatUint(rand.Uint64(), 36)
	secrets := map[string]string{
		"secretAccessKey": "chaosSecretKey" + suffix,
		"sessionToken":    "chaosSessionToken" + suffix,
		"header":          "chaosHeaderValue" + suffix,
		"authToken":       "chaosAdminToken" + suffix,
	}
	var gotHeader string
	l := newLedger()
	s := newSink(t, func(w http.ResponseWriter, c call) (int, string) {
		gotHeader = c.Req.Header.Get("Authorization")
		l.observe(0, c.Recs)
		if containsData(c, "key-0:0") {
			return 500, `{"errorMessage":"boom","errorType":"Error"}`
		}
		return 200, ""
	})
	dir := t.TempDir()
	dest := filepath.Join(dir, "failures.jsonl")
	cfg := fmt.Sprintf(`aws:
  region: us-east-1
  credentials: {accessKeyId: AKIACHAOSTEST, secretAccessKey: %s, sessionToken: %s}
  endpoints:
    kinesis: %s
functions:
  sink:
    http: {url: %q, timeout: 5s, headers: {Authorization: "Bearer %s"}}
checkpoints:
  file: {path: %s}
server: {listen: "127.0.0.1:0", authToken: %s}
logging: {level: debug}
shutdownTimeout: 20s
`, secrets["secretAccessKey"], secrets["sessionToken"], ep, s.srv.URL, secrets["header"],
		filepath.Join(dir, "state", "cp.db"), secrets["authToken"]) + mappingYAML(arn, fmt.Sprintf(`StartingPosition: TRIM_HORIZON
BatchSize: 5
MaximumRetryAttempts: 1
DestinationConfig: {OnFailure: {Destination: "file://%s"}}
esmd: {pollInterval: 50ms, retryBackoff: {initial: 10ms, max: 50ms}}`, dest))
	p := startESMD(t, dir, cfg)
	waitFor(t, 30*time.Second, "every record and a failure record", func() bool {
		return l.unique() == 20 && len(readFailures(t, dest)) == 1
	})
	if gotHeader != "Bearer "+secrets["header"] {
		t.Fatalf("the function got Authorization %q: the header secret is not in use", gotHeader)
	}
	outputs := map[string]string{}
	// The admin server, when esmd has one: /mappings and /metrics with the
	// token; without it, a refusal.
	for _, addr := range listeners(t, p.pid()) {
		for _, path := range []string{"/mappings", "/metrics", "/healthz", "/readyz"} {
			req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if path == "/mappings" && resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("GET %s without the token: %d, want 401", path, resp.StatusCode)
				}
			}
			req.Header.Set("Authorization", "Bearer "+secrets["authToken"])
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("GET %s: %v", path, err)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			outputs["GET "+path] = string(b)
		}
	}
	if _, ok := outputs["GET /mappings"]; !ok {
		t.Log("esmd serves no admin endpoints: /mappings not checked")
	}
	if code := p.term(30 * time.Second); code != 0 {
		t.Errorf("drain exited %d", code)
	}
	outputs["esmd run (debug log)"] = p.log()
	cfgPath := filepath.Join(dir, "esmd.yaml")
	out, _ := exec.Command(esmdBinary(t), "check", "-c", cfgPath).CombinedOutput()
	outputs["esmd check"] = string(out)
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte(strings.Replace(cfg, "BatchSize: 5", "BatchSize: 50000", 1)+"    Bogus: "+secrets["header"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ = exec.Command(esmdBinary(t), "check", "-c", broken).CombinedOutput()
	outputs["esmd check (invalid file)"] = string(out)
	b, _ := os.ReadFile(dest)
	outputs["failure records"] = string(b)
	for what, text := range outputs {
		if text == "" && what != "failure records" && !strings.HasPrefix(what, "GET ") {
			t.Errorf("%s printed nothing", what)
		}
		for kind, secret := range secrets {
			if what == "esmd check (invalid file)" && kind == "header" {
				// The broken file also echoes the secret under an
				// unknown key, as a value esmd cannot know is secret.
				continue
			}
			if strings.Contains(text, secret) {
				t.Errorf("%s shows the %s", what, kind)
			}
		}
	}
	result(t, "security: secrets in logs, check, failure records", 1, 20, 0, l.snap().dups, fmt.Sprintf("%d outputs, no secret", len(outputs)))
}

// TestDockerfileNonRoot checks that the image's final stage runs as a
// non-root user.
func TestDockerfileNonRoot(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var user string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			user = "" // a new stage starts as root unless its base says otherwise
			if strings.Contains(line, ":nonroot") {
				user = "nonroot (base image)"
			}
		case "USER":
			if len(f) > 1 {
				user = f[1]
			}
		}
	}
	name, _, _ := strings.Cut(user, ":")
	if user == "" || name == "0" || name == "root" {
		t.Fatalf("the final stage runs as %q, want a non-root user", user)
	}
	t.Logf("final stage runs as %s", user)
}
