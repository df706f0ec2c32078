// Package efoshim lets aws-sdk-go-v2 subscribe to shards of kinesis-mock.
//
// kinesis-mock answers SubscribeToShard with an event stream that lacks the
// "initial-response" event the SDK reads first, so the SDK fails with
// "expected initial-response". Start runs a reverse proxy in front of
// kinesis-mock that inserts that event at the head of every event-stream
// response and passes everything else through unchanged.
package efoshim

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
)

// Start runs the proxy on 127.0.0.1 in front of upstream (an http URL) and
// returns its endpoint. The proxy stops when the test ends.
func Start(t testing.TB, upstream string) (endpoint string) {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatalf("efoshim: upstream %q: %v", upstream, err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // the request was signed for the proxy's host
		},
		// Pass each event on as soon as it arrives.
		FlushInterval:  -1,
		ModifyResponse: prependInitialResponse,
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return srv.URL
}

func prependInitialResponse(resp *http.Response) error {
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "eventstream") {
		return nil
	}
	frame := InitialResponse()
	resp.Body = readCloser{io.MultiReader(bytes.NewReader(frame), resp.Body), resp.Body}
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	return nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// InitialResponse returns an event-stream message of event type
// initial-response with an empty JSON object as its payload.
//
// A message is a 12-byte prelude (total length, headers length, CRC-32 of
// those 8 bytes), the headers, the payload and a CRC-32 of all that comes
// before it; integers are big-endian. Each header is a 1-byte name length,
// the name, a type byte (7 for a string), a 2-byte value length and the
// value.
func InitialResponse() []byte {
	var headers []byte
	for _, h := range [][2]string{
		{":message-type", "event"},
		{":event-type", "initial-response"},
		{":content-type", "application/json"},
	} {
		headers = append(headers, byte(len(h[0])))
		headers = append(headers, h[0]...)
		headers = append(headers, 7)
		headers = binary.BigEndian.AppendUint16(headers, uint16(len(h[1])))
		headers = append(headers, h[1]...)
	}
	payload := []byte("{}")
	total := 12 + len(headers) + len(payload) + 4
	msg := make([]byte, 0, total)
	msg = binary.BigEndian.AppendUint32(msg, uint32(total))
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(headers)))
	msg = binary.BigEndian.AppendUint32(msg, crc32.ChecksumIEEE(msg))
	msg = append(msg, headers...)
	msg = append(msg, payload...)
	return binary.BigEndian.AppendUint32(msg, crc32.ChecksumIEEE(msg))
}
