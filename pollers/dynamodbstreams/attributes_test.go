package dynamodbstreams

import (
	"encoding/json"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

func TestAppendAttributeMap(t *testing.T) {
	cases := []struct {
		name string
		m    map[string]types.AttributeValue
		want string
	}{
		{"nil map is absent", nil, ``},
		{"empty map", map[string]types.AttributeValue{}, `{}`},
		{"sorted names", map[string]types.AttributeValue{
			"b": &types.AttributeValueMemberN{Value: "2"}, "a": &types.AttributeValueMemberS{Value: "x"}, "B": &types.AttributeValueMemberNULL{Value: true},
		}, `{"B":{"NULL":true},"a":{"S":"x"},"b":{"N":"2"}}`},
		{"scalars", map[string]types.AttributeValue{
			"s":  &types.AttributeValueMemberS{Value: "q\"<&>\u2028\x00é"},
			"n":  &types.AttributeValueMemberN{Value: "-1.5E+10"},
			"b":  &types.AttributeValueMemberB{Value: []byte{0, 0xff, 0x10}},
			"t":  &types.AttributeValueMemberBOOL{Value: true},
			"f":  &types.AttributeValueMemberBOOL{Value: false},
			"nl": &types.AttributeValueMemberNULL{Value: true},
		}, `{"b":{"B":"AP8Q"},"f":{"BOOL":false},"n":{"N":"-1.5E+10"},"nl":{"NULL":true},"s":{"S":"q\"\u003c\u0026\u003e\u2028\u0000é"},"t":{"BOOL":true}}`},
		{"sets", map[string]types.AttributeValue{
			"ss": &types.AttributeValueMemberSS{Value: []string{"a", "b"}},
			"ns": &types.AttributeValueMemberNS{Value: []string{"1", "2.5"}},
			"bs": &types.AttributeValueMemberBS{Value: [][]byte{{1}, {2, 3}}},
		}, `{"bs":{"BS":["AQ==","AgM="]},"ns":{"NS":["1","2.5"]},"ss":{"SS":["a","b"]}}`},
		{"nested", map[string]types.AttributeValue{
			"m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
				"z": &types.AttributeValueMemberL{Value: []types.AttributeValue{
					&types.AttributeValueMemberS{Value: "x"},
					&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": &types.AttributeValueMemberN{Value: "1"}}},
					&types.AttributeValueMemberL{Value: []types.AttributeValue{}},
				}},
				"a": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}},
			}},
		}, `{"m":{"M":{"a":{"M":{}},"z":{"L":[{"S":"x"},{"M":{"k":{"N":"1"}}},{"L":[]}]}}}}`},
		{"unknown member", map[string]types.AttributeValue{"u": &types.UnknownUnionMember{Tag: "VECTOR", Value: []byte("[1]")}}, `{"u":{"VECTOR":null}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := string(appendAttributeMap(nil, c.m))
			if got != c.want {
				t.Fatalf("got  %s\nwant %s", got, c.want)
			}
			if got == "" || c.name == "unknown member" {
				return
			}
			var m map[string]events.DynamoDBAttributeValue
			if err := json.Unmarshal([]byte(got), &m); err != nil {
				t.Fatalf("aws-lambda-go cannot decode %s: %v", got, err)
			}
		})
	}
}

func TestAppendAttributeMapLargeMap(t *testing.T) {
	// More attributes than the name buffer on the stack holds.
	m := map[string]types.AttributeValue{}
	for i := range 40 {
		m[string(rune('A'+i))] = &types.AttributeValueMemberN{Value: "1"}
	}
	var got map[string]json.RawMessage
	b := appendAttributeMap(nil, m)
	if err := json.Unmarshal(b, &got); err != nil || len(got) != 40 {
		t.Fatalf("%d attributes, %v: %s", len(got), err, b)
	}
	want, _ := json.Marshal(got) // encoding/json sorts keys
	if string(want) != string(b) {
		t.Fatalf("not sorted:\n got %s\nwant %s", b, want)
	}
}
