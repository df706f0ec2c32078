package invokertest_test

import (
	"testing"
	"time"

	"github.com/esmd-dev/esmd/test/servers"
)

func TestMain(m *testing.M) { servers.Main(m) }

// suiteTimeout is the function timeout of the conformance runs: long enough
// for a 6 MB event on a busy two-core machine under the race detector.
const suiteTimeout = 3 * time.Second
