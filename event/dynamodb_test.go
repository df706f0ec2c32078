package event

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

const testDDBStreamARN = "arn:aws:dynamodb:us-east-1:000000000000:table/orders/stream/2026-11-25T12:00:00.000"

func TestDynamoDBEncodeExactShape(t *testing.T) {
	e := NewDynamoDBEncoder("us-east-1", testDDBStreamARN)
	r := e.Encode(DynamoDBRecord{
		EventID:                     "c4ca4238a0b923820dcc509a6f75849b",
		EventName:                   "REMOVE",
		ApproximateCreationDateTime: time.Unix(1479499740, 987_000_000),
		Keys:                        []byte(`{"Id":{"N":"101"}}`),
		OldImage:                    []byte(`{"Id":{"N":"101"},"Message":{"S":"gone"}}`),
		SequenceNumber:              "4421584500000000017450439091",
		SizeBytes:                   38,
		StreamViewType:              "NEW_AND_OLD_IMAGES",
		UserIdentity:                &UserIdentity{Type: "Service", PrincipalID: "dynamodb.amazonaws.com"},
	})
	want := `{"eventID":"c4ca4238a0b923820dcc509a6f75849b","eventName":"REMOVE","eventVersion":"1.0",` +
		`"eventSource":"aws:dynamodb","awsRegion":"us-east-1","dynamodb":{"ApproximateCreationDateTime":1479499740,` +
		`"Keys":{"Id":{"N":"101"}},"OldImage":{"Id":{"N":"101"},"Message":{"S":"gone"}},` +
		`"SequenceNumber":"4421584500000000017450439091","SizeBytes":38,"StreamViewType":"NEW_AND_OLD_IMAGES"},` +
		`"eventSourceARN":"` + testDDBStreamARN + `",` +
		`"userIdentity":{"type":"Service","principalId":"dynamodb.amazonaws.com"}}`
	if got := string(r.JSON); got != want {
		t.Fatalf("JSON\n got %s\nwant %s", got, want)
	}
	if r.Key != `{"Id":{"N":"101"}}` || r.Seq != "4421584500000000017450439091" || r.ID != r.Seq {
		t.Fatalf("Key %q Seq %q ID %q", r.Key, r.Seq, r.ID)
	}
	if !r.Arrival.Equal(time.Unix(1479499740, 987_000_000)) {
		t.Fatalf("Arrival %v", r.Arrival)
	}
}

// allTypes returns an attribute map holding every DynamoDB attribute type,
// with strings that need escaping.
func allTypes() map[string]events.DynamoDBAttributeValue {
	return map[string]events.DynamoDBAttributeValue{
		"Id":    events.NewNumberAttribute("101"),
		"S":     events.NewStringAttribute("quote \" backslash \\ <tag> & \u2028 é 日本 \x01"),
		"Empty": events.NewStringAttribute(""),
		"N":     events.NewNumberAttribute("-1.5E+10"),
		"B":     events.NewBinaryAttribute([]byte{0, 1, 2, 0xff, 0xfe}),
		"BOOL":  events.NewBooleanAttribute(true),
		"F":     events.NewBooleanAttribute(false),
		"NULL":  events.NewNullAttribute(),
		"SS":    events.NewStringSetAttribute([]string{"a", "b\"c"}),
		"NS":    events.NewNumberSetAttribute([]string{"1", "2.5", "-3"}),
		"BS":    events.NewBinarySetAttribute([][]byte{{1}, {2, 3}}),
		"L": events.NewListAttribute([]events.DynamoDBAttributeValue{
			events.NewStringAttribute("x"), events.NewNumberAttribute("7"), events.NewNullAttribute(),
			events.NewMapAttribute(map[string]events.DynamoDBAttributeValue{"k": events.NewBooleanAttribute(false)}),
		}),
		"M": events.NewMapAttribute(map[string]events.DynamoDBAttributeValue{
			"inner": events.NewStringAttribute("v"),
			"list":  events.NewListAttribute([]events.DynamoDBAttributeValue{}),
		}),
		"Deep": deep(32),
	}
}

// deep returns an attribute nested n levels, alternating maps and lists.
func deep(n int) events.DynamoDBAttributeValue {
	v := events.NewStringAttribute("bottom")
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			v = events.NewMapAttribute(map[string]events.DynamoDBAttributeValue{"d": v})
		} else {
			v = events.NewListAttribute([]events.DynamoDBAttributeValue{v})
		}
	}
	return v
}

func marshalImage(t *testing.T, m map[string]events.DynamoDBAttributeValue) []byte {
	t.Helper()
	if m == nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDynamoDBEncodeRoundTrip(t *testing.T) {
	keys := map[string]events.DynamoDBAttributeValue{
		"Id": events.NewNumberAttribute("101"), "Sort": events.NewStringAttribute("a&b"),
	}
	ttl := &UserIdentity{Type: "Service", PrincipalID: "dynamodb.amazonaws.com"}
	created := time.Unix(1764072000, 0)
	cases := []struct {
		name          string
		eventName     string
		region        string
		newImg, old   map[string]events.DynamoDBAttributeValue
		view          string
		user          *UserIdentity
		wantRegionOut string
	}{
		{name: "insert", eventName: "INSERT", newImg: allTypes(), view: "NEW_IMAGE", wantRegionOut: "eu-west-1"},
		{name: "modify", eventName: "MODIFY", newImg: allTypes(), old: keys, view: "NEW_AND_OLD_IMAGES", wantRegionOut: "eu-west-1"},
		{name: "remove", eventName: "REMOVE", old: allTypes(), view: "OLD_IMAGE", wantRegionOut: "eu-west-1"},
		{name: "keys only", eventName: "MODIFY", view: "KEYS_ONLY", wantRegionOut: "eu-west-1"},
		{name: "ttl delete", eventName: "REMOVE", old: allTypes(), view: "NEW_AND_OLD_IMAGES", user: ttl, wantRegionOut: "eu-west-1"},
		{name: "region override", eventName: "INSERT", region: "ap-south-2", newImg: keys, view: "NEW_IMAGE", wantRegionOut: "ap-south-2"},
	}
	e := NewDynamoDBEncoder("eu-west-1", testDDBStreamARN)
	var recs []Record
	for i, c := range cases {
		recs = append(recs, e.Encode(DynamoDBRecord{
			EventID:                     "id-" + c.name,
			EventName:                   c.eventName,
			AwsRegion:                   c.region,
			ApproximateCreationDateTime: created.Add(time.Duration(i) * time.Second),
			Keys:                        marshalImage(t, keys),
			NewImage:                    marshalImage(t, c.newImg),
			OldImage:                    marshalImage(t, c.old),
			SequenceNumber:              "1000000000000000000000" + string(rune('0'+i)),
			SizeBytes:                   int64(100 + i),
			StreamViewType:              c.view,
			UserIdentity:                c.user,
		}))
	}
	payload := AppendEvent(nil, recs)
	if len(payload) != EventSize(recs) {
		t.Fatalf("EventSize %d, payload %d", EventSize(recs), len(payload))
	}
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(ev.Records) != len(cases) {
		t.Fatalf("%d records, want %d", len(ev.Records), len(cases))
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ev.Records[i]
			if got.EventID != "id-"+c.name || got.EventName != c.eventName || got.EventVersion != "1.0" ||
				got.EventSource != "aws:dynamodb" || got.AWSRegion != c.wantRegionOut || got.EventSourceArn != testDDBStreamARN {
				t.Errorf("header fields: %+v", got)
			}
			ch := got.Change
			if want := created.Add(time.Duration(i) * time.Second); !ch.ApproximateCreationDateTime.Equal(want) {
				t.Errorf("ApproximateCreationDateTime %v, want %v", ch.ApproximateCreationDateTime, want)
			}
			if ch.SequenceNumber != recs[i].Seq || ch.SizeBytes != int64(100+i) || ch.StreamViewType != c.view {
				t.Errorf("SequenceNumber %q SizeBytes %d StreamViewType %q", ch.SequenceNumber, ch.SizeBytes, ch.StreamViewType)
			}
			compareImage(t, "Keys", ch.Keys, keys)
			compareImage(t, "NewImage", ch.NewImage, c.newImg)
			compareImage(t, "OldImage", ch.OldImage, c.old)
			if !reflect.DeepEqual(got.UserIdentity, toEventsIdentity(c.user)) {
				t.Errorf("userIdentity %+v, want %+v", got.UserIdentity, c.user)
			}
			raw := string(recs[i].JSON)
			if c.newImg == nil && strings.Contains(raw, `"NewImage"`) || c.old == nil && strings.Contains(raw, `"OldImage"`) ||
				c.user == nil && strings.Contains(raw, `"userIdentity"`) {
				t.Errorf("absent member encoded: %s", raw)
			}
		})
	}
}

func toEventsIdentity(u *UserIdentity) *events.DynamoDBUserIdentity {
	if u == nil {
		return nil
	}
	return &events.DynamoDBUserIdentity{Type: u.Type, PrincipalID: u.PrincipalID}
}

// compareImage compares every attribute, recursively, through the decoded
// values' own accessors.
func compareImage(t *testing.T, what string, got, want map[string]events.DynamoDBAttributeValue) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d attributes, want %d", what, len(got), len(want))
		return
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s.%s missing", what, name)
			continue
		}
		compareAttr(t, what+"."+name, g, w)
	}
}

func compareAttr(t *testing.T, path string, got, want events.DynamoDBAttributeValue) {
	t.Helper()
	if got.DataType() != want.DataType() {
		t.Errorf("%s: type %v, want %v", path, got.DataType(), want.DataType())
		return
	}
	switch want.DataType() {
	case events.DataTypeMap:
		compareImage(t, path, got.Map(), want.Map())
	case events.DataTypeList:
		gl, wl := got.List(), want.List()
		if len(gl) != len(wl) {
			t.Errorf("%s: %d elements, want %d", path, len(gl), len(wl))
			return
		}
		for i := range wl {
			compareAttr(t, path+"["+strconv.Itoa(i)+"]", gl[i], wl[i])
		}
	default:
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
	}
}

func TestDynamoDBDeepNesting(t *testing.T) {
	// Walk the decoded 32-level attribute down to its bottom.
	e := NewDynamoDBEncoder("us-east-1", testDDBStreamARN)
	img := marshalImage(t, map[string]events.DynamoDBAttributeValue{"Deep": deep(32)})
	r := e.Encode(DynamoDBRecord{EventID: "1", EventName: "INSERT", Keys: []byte(`{"Id":{"S":"x"}}`),
		NewImage: img, SequenceNumber: "1", StreamViewType: "NEW_IMAGE"})
	var rec events.DynamoDBEventRecord
	if err := json.Unmarshal(r.JSON, &rec); err != nil {
		t.Fatal(err)
	}
	v := rec.Change.NewImage["Deep"]
	levels := 0
	for v.DataType() != events.DataTypeString {
		switch v.DataType() {
		case events.DataTypeMap:
			v = v.Map()["d"]
		case events.DataTypeList:
			v = v.List()[0]
		default:
			t.Fatalf("level %d: type %v", levels, v.DataType())
		}
		levels++
	}
	if levels != 32 || v.String() != "bottom" {
		t.Fatalf("levels %d, bottom %q", levels, v.String())
	}
}

func TestDynamoDBEncodeTimes(t *testing.T) {
	e := NewDynamoDBEncoder("us-east-1", testDDBStreamARN)
	cases := []struct {
		name string
		at   time.Time
		want string
	}{
		{"whole seconds", time.Unix(1700000000, 0), `{"dynamodb":{"ApproximateCreationDateTime":1700000000,"Keys"`},
		{"fraction truncated", time.Unix(1700000000, 999_999_999), `{"dynamodb":{"ApproximateCreationDateTime":1700000000,"Keys"`},
		{"zero omitted", time.Time{}, `{"dynamodb":{"Keys"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.Encode(DynamoDBRecord{Keys: []byte(`{"k":{"S":"v"}}`), ApproximateCreationDateTime: c.at})
			s := string(r.JSON)
			i := strings.Index(s, `"dynamodb"`)
			if i < 0 || !strings.HasPrefix("{"+s[i:], c.want) {
				t.Fatalf("got %s, want it to contain %s", s, c.want)
			}
			if !r.Arrival.Equal(c.at) {
				t.Fatalf("Arrival %v, want %v", r.Arrival, c.at)
			}
		})
	}
}

func TestDynamoDBCanonicalKey(t *testing.T) {
	want := `{"a":{"S":"x"},"b":{"N":"1"}}`
	cases := []struct {
		name, keys, want string
	}{
		{"canonical", want, want},
		{"reordered", `{"b":{"N":"1"},"a":{"S":"x"}}`, want},
		{"spaced", `{ "a": {"S": "x"}, "b": {"N":"1"} }`, want},
		{"single", `{"Id":{"N":"101"}}`, `{"Id":{"N":"101"}}`},
		{"string with braces and commas", `{"k":{"S":"{,}\"[\\"}}`, `{"k":{"S":"{,}\"[\\"}}`},
		{"escaped name", `{"\u0062":{"N":"1"},"a":{"S":"x"}}`, want},
		{"invalid kept", `{"a":`, `{"a":`},
		{"empty", ``, ``},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := canonicalKey([]byte(c.keys)); got != c.want {
				t.Fatalf("canonicalKey(%s) = %s, want %s", c.keys, got, c.want)
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	e := NewDynamoDBEncoder("us-east-1", testDDBStreamARN)
	r := DynamoDBRecord{
		EventID:                     "c4ca4238a0b923820dcc509a6f75849b",
		EventName:                   "MODIFY",
		ApproximateCreationDateTime: time.Unix(1700000000, 0),
		Keys:                        []byte(`{"Id":{"N":"101"}}`),
		NewImage:                    []byte(`{"Id":{"N":"101"},"Message":{"S":"new item, with a little text"},"Count":{"N":"42"}}`),
		OldImage:                    []byte(`{"Id":{"N":"101"},"Message":{"S":"old item"},"Count":{"N":"41"}}`),
		SequenceNumber:              "4421584500000000017450439091",
		SizeBytes:                   120,
		StreamViewType:              "NEW_AND_OLD_IMAGES",
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n += len(e.Encode(r).JSON)
	}
	b.SetBytes(int64(n / max(b.N, 1)))
}

// The stream record's eventVersion is passed on, as by Lambda (DynamoDB
// Streams writes "1.1" today); without one, the event has "1.0", the version
// of Lambda's documented DynamoDB event.
func TestDynamoDBEventVersion(t *testing.T) {
	e := NewDynamoDBEncoder("us-east-1", testDDBStreamARN)
	for _, tc := range []struct{ in, want string }{{"", "1.0"}, {"1.1", "1.1"}, {"1.0", "1.0"}} {
		r := e.Encode(DynamoDBRecord{EventID: "1", EventName: "INSERT", EventVersion: tc.in, Keys: []byte(`{"Id":{"N":"1"}}`), SequenceNumber: "1"})
		want := `{"eventID":"1","eventName":"INSERT","eventVersion":"` + tc.want + `","eventSource":"aws:dynamodb",`
		if !strings.HasPrefix(string(r.JSON), want) {
			t.Errorf("eventVersion %q: %s, want it to begin %s", tc.in, r.JSON, want)
		}
	}
}
