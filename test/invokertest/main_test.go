package invokertest_test

import (
	"testing"

	"github.com/esmd-dev/esmd/test/servers"
)

func TestMain(m *testing.M) { servers.Main(m) }
