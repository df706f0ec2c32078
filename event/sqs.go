package event

import (
	"encoding/base64"
	"slices"
	"strconv"
	"time"
)

// SQSMessage is one message as ReceiveMessage returned it, with all system
// attributes and all message attributes requested.
type SQSMessage struct {
	MessageID     string
	ReceiptHandle string
	Body          string
	MD5OfBody     string
	// MD5OfMessageAttributes is set by SQS when the message has message
	// attributes; it is passed on only then.
	MD5OfMessageAttributes string
	// Attributes are the system attributes by name (ApproximateReceiveCount,
	// SentTimestamp, SenderId, ApproximateFirstReceiveTimestamp, and for FIFO
	// queues SequenceNumber, MessageGroupId, MessageDeduplicationId; also
	// AWSTraceHeader when the message is traced). Values are SQS's strings.
	Attributes        map[string]string
	MessageAttributes map[string]SQSMessageAttribute
}

// SQSMessageAttribute is one message attribute. DataType is String, Number,
// Binary or a custom type such as "String.uuid"; string and number types
// carry StringValue, binary types BinaryValue.
type SQSMessageAttribute struct {
	DataType    string
	StringValue *string
	BinaryValue []byte
	// The list values are reserved by SQS and always empty today; they are
	// encoded as they come.
	StringListValues []string
	BinaryListValues [][]byte
}

// sqsAttributeOrder lists the system attributes Lambda passes on, in the
// order it writes them; others are dropped.
var sqsAttributeOrder = []string{
	"ApproximateReceiveCount",
	"AWSTraceHeader",
	"SentTimestamp",
	"SequenceNumber",
	"MessageGroupId",
	"SenderId",
	"MessageDeduplicationId",
	"ApproximateFirstReceiveTimestamp",
}

// SQSEncoder turns received SQS messages into the JSON objects of Lambda's
// SQS event. One encoder serves one mapping; it is safe for concurrent use.
type SQSEncoder struct {
	tail []byte // ,"eventSource":...,"awsRegion":"..."}
}

// NewSQSEncoder returns an encoder for messages of the queue queueARN in
// region.
func NewSQSEncoder(region, queueARN string) *SQSEncoder {
	e := &SQSEncoder{}
	e.tail = append(e.tail, `,"eventSource":"aws:sqs","eventSourceARN":`...)
	e.tail = appendString(e.tail, queueARN)
	e.tail = append(e.tail, `,"awsRegion":`...)
	e.tail = appendString(e.tail, region)
	e.tail = append(e.tail, '}')
	return e
}

// Encode returns the message's Lambda JSON: messageId, receiptHandle, body,
// attributes (strings), messageAttributes (sorted by name, binary values in
// base64), md5OfMessageAttributes when SQS sent one, md5OfBody, eventSource,
// eventSourceARN and awsRegion. The Record's ID is the messageId (the
// itemIdentifier of a partial batch response), Key the MessageGroupId of a
// FIFO message (else ""), Seq its SequenceNumber, Receipt the receipt handle
// and Arrival the SentTimestamp.
func (e *SQSEncoder) Encode(m SQSMessage) Record {
	n := 160 + len(m.MessageID) + len(m.ReceiptHandle) + len(m.Body) + len(m.MD5OfBody) + len(e.tail)
	for k, v := range m.Attributes {
		n += len(k) + len(v) + 6
	}
	for k, a := range m.MessageAttributes {
		n += len(k) + len(a.DataType) + base64.StdEncoding.EncodedLen(len(a.BinaryValue)) + 80
		if a.StringValue != nil {
			n += len(*a.StringValue) + 16
		}
	}
	b := make([]byte, 0, n)
	b = append(b, `{"messageId":`...)
	b = appendString(b, m.MessageID)
	b = append(b, `,"receiptHandle":`...)
	b = appendString(b, m.ReceiptHandle)
	b = append(b, `,"body":`...)
	b = appendString(b, m.Body)
	b = append(b, `,"attributes":{`...)
	sep := false
	for _, k := range sqsAttributeOrder {
		v, ok := m.Attributes[k]
		if !ok {
			continue
		}
		if sep {
			b = append(b, ',')
		}
		sep = true
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, `":`...)
		b = appendString(b, v)
	}
	b = append(b, `},"messageAttributes":{`...)
	names := make([]string, 0, len(m.MessageAttributes))
	for k := range m.MessageAttributes {
		names = append(names, k)
	}
	slices.Sort(names)
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendSQSAttribute(b, m.MessageAttributes[k])
	}
	b = append(b, '}')
	if m.MD5OfMessageAttributes != "" {
		b = append(b, `,"md5OfMessageAttributes":`...)
		b = appendString(b, m.MD5OfMessageAttributes)
	}
	b = append(b, `,"md5OfBody":`...)
	b = appendString(b, m.MD5OfBody)
	b = append(b, e.tail...)

	r := Record{
		ID:      m.MessageID,
		Receipt: m.ReceiptHandle,
		Seq:     m.Attributes["SequenceNumber"],
		Key:     m.Attributes["MessageGroupId"],
		JSON:    b,
	}
	if ms, err := strconv.ParseInt(m.Attributes["SentTimestamp"], 10, 64); err == nil {
		r.Arrival = time.UnixMilli(ms)
	}
	return r
}

// appendSQSAttribute appends one message attribute in Lambda's shape:
// stringValue or binaryValue, then both list values (always present) and
// dataType.
func appendSQSAttribute(b []byte, a SQSMessageAttribute) []byte {
	b = append(b, '{')
	if a.StringValue != nil {
		b = append(b, `"stringValue":`...)
		b = appendString(b, *a.StringValue)
		b = append(b, ',')
	}
	if len(a.BinaryValue) > 0 {
		b = append(b, `"binaryValue":"`...)
		b = AppendBase64(b, a.BinaryValue)
		b = append(b, `",`...)
	}
	b = append(b, `"stringListValues":[`...)
	for i, s := range a.StringListValues {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	b = append(b, `],"binaryListValues":[`...)
	for i, v := range a.BinaryListValues {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = AppendBase64(b, v)
		b = append(b, '"')
	}
	b = append(b, `],"dataType":`...)
	b = appendString(b, a.DataType)
	return append(b, '}')
}
