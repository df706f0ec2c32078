package dynamodbstreams

import (
	"slices"

	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/esmd-dev/esmd/event"
)

// appendAttributeMap appends m as DynamoDB's typed JSON (for example
// {"Id":{"N":"101"}}) to dst, with attribute names sorted so that equal maps
// always encode to equal bytes. A nil map appends nothing, so that the
// encoder leaves the member out.
func appendAttributeMap(dst []byte, m map[string]types.AttributeValue) []byte {
	if m == nil {
		return dst
	}
	var buf [16]string
	names := buf[:0]
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	dst = append(dst, '{')
	for i, name := range names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendNamed(dst, name, m[name])
	}
	return append(dst, '}')
}

// appendNamed appends one member of an attribute map: "name":{...}.
func appendNamed(dst []byte, name string, v types.AttributeValue) []byte {
	dst = event.AppendJSONString(dst, name)
	dst = append(dst, ':')
	return appendAttribute(dst, v)
}

// appendAttribute appends one attribute value as {"<type>":<value>}. Binary
// values are base64 (standard alphabet, padded), numbers stay strings, and
// sets are arrays. A member type unknown to this SDK is written with a null
// value under its tag.
func appendAttribute(dst []byte, v types.AttributeValue) []byte {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		dst = append(dst, `{"S":`...)
		dst = event.AppendJSONString(dst, v.Value)
	case *types.AttributeValueMemberN:
		dst = append(dst, `{"N":`...)
		dst = event.AppendJSONString(dst, v.Value)
	case *types.AttributeValueMemberB:
		dst = append(dst, `{"B":`...)
		dst = appendBase64(dst, v.Value)
	case *types.AttributeValueMemberBOOL:
		if v.Value {
			return append(dst, `{"BOOL":true}`...)
		}
		return append(dst, `{"BOOL":false}`...)
	case *types.AttributeValueMemberNULL:
		if v.Value {
			return append(dst, `{"NULL":true}`...)
		}
		return append(dst, `{"NULL":false}`...)
	case *types.AttributeValueMemberM:
		dst = append(dst, `{"M":`...)
		if v.Value == nil {
			dst = append(dst, "{}"...)
		} else {
			dst = appendAttributeMap(dst, v.Value)
		}
	case *types.AttributeValueMemberL:
		dst = append(dst, `{"L":[`...)
		for i, e := range v.Value {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendAttribute(dst, e)
		}
		dst = append(dst, ']')
	case *types.AttributeValueMemberSS:
		dst = append(dst, `{"SS":`...)
		dst = appendStrings(dst, v.Value)
	case *types.AttributeValueMemberNS:
		dst = append(dst, `{"NS":`...)
		dst = appendStrings(dst, v.Value)
	case *types.AttributeValueMemberBS:
		dst = append(dst, `{"BS":[`...)
		for i, b := range v.Value {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendBase64(dst, b)
		}
		dst = append(dst, ']')
	case *types.UnknownUnionMember:
		dst = append(dst, '{')
		dst = event.AppendJSONString(dst, v.Tag)
		dst = append(dst, `:null`...)
	default:
		return append(dst, `{"NULL":true}`...)
	}
	return append(dst, '}')
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = event.AppendJSONString(dst, s)
	}
	return append(dst, ']')
}

func appendBase64(dst []byte, b []byte) []byte {
	dst = append(dst, '"')
	dst = event.AppendBase64(dst, b)
	return append(dst, '"')
}
