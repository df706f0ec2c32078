package sqs

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

// fakeAPI answers batch calls from a script: fail[receipt] is how many
// more times that entry fails, and senderFault marks failures that are the
// sender's.
type fakeAPI struct {
	mu          sync.Mutex
	fail        map[string]int
	senderFault map[string]bool
	calls       [][]string // receipt handles per batch call
	urlCalls    int
	receive     *awssqs.ReceiveMessageInput
}

func (f *fakeAPI) ReceiveMessage(ctx context.Context, in *awssqs.ReceiveMessageInput, _ ...func(*awssqs.Options)) (*awssqs.ReceiveMessageOutput, error) {
	f.mu.Lock()
	f.receive = in
	f.mu.Unlock()
	return &awssqs.ReceiveMessageOutput{}, nil
}

func (f *fakeAPI) answer(ids, receipts []string) ([]string, []types.BatchResultErrorEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, receipts)
	var ok []string
	var failed []types.BatchResultErrorEntry
	for i, rh := range receipts {
		if f.fail[rh] > 0 {
			f.fail[rh]--
			failed = append(failed, types.BatchResultErrorEntry{Id: aws.String(ids[i]), Code: aws.String("InternalError"), SenderFault: f.senderFault[rh]})
			continue
		}
		ok = append(ok, ids[i])
	}
	return ok, failed
}

func (f *fakeAPI) DeleteMessageBatch(ctx context.Context, in *awssqs.DeleteMessageBatchInput, _ ...func(*awssqs.Options)) (*awssqs.DeleteMessageBatchOutput, error) {
	var ids, rhs []string
	for _, e := range in.Entries {
		ids, rhs = append(ids, aws.ToString(e.Id)), append(rhs, aws.ToString(e.ReceiptHandle))
	}
	ok, failed := f.answer(ids, rhs)
	out := &awssqs.DeleteMessageBatchOutput{Failed: failed}
	for _, id := range ok {
		out.Successful = append(out.Successful, types.DeleteMessageBatchResultEntry{Id: aws.String(id)})
	}
	return out, nil
}

func (f *fakeAPI) ChangeMessageVisibilityBatch(ctx context.Context, in *awssqs.ChangeMessageVisibilityBatchInput, _ ...func(*awssqs.Options)) (*awssqs.ChangeMessageVisibilityBatchOutput, error) {
	var ids, rhs []string
	for _, e := range in.Entries {
		ids, rhs = append(ids, aws.ToString(e.Id)), append(rhs, aws.ToString(e.ReceiptHandle))
	}
	ok, failed := f.answer(ids, rhs)
	out := &awssqs.ChangeMessageVisibilityBatchOutput{Failed: failed}
	for _, id := range ok {
		out.Successful = append(out.Successful, types.ChangeMessageVisibilityBatchResultEntry{Id: aws.String(id)})
	}
	return out, nil
}

func (f *fakeAPI) GetQueueAttributes(ctx context.Context, in *awssqs.GetQueueAttributesInput, _ ...func(*awssqs.Options)) (*awssqs.GetQueueAttributesOutput, error) {
	return &awssqs.GetQueueAttributesOutput{Attributes: map[string]string{"VisibilityTimeout": "45"}}, nil
}

func (f *fakeAPI) GetQueueUrl(ctx context.Context, in *awssqs.GetQueueUrlInput, _ ...func(*awssqs.Options)) (*awssqs.GetQueueUrlOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.urlCalls++
	return &awssqs.GetQueueUrlOutput{QueueUrl: aws.String("https://sqs.example/" + aws.ToString(in.QueueOwnerAWSAccountId) + "/" + aws.ToString(in.QueueName))}, nil
}

func fakeRecs(n int) []event.Record {
	recs := make([]event.Record, n)
	for i := range recs {
		recs[i] = event.Record{ID: "m" + strconv.Itoa(i), Receipt: "rh" + strconv.Itoa(i)}
	}
	return recs
}

func TestDeleteChunksAndRetries(t *testing.T) {
	cases := []struct {
		name        string
		fail        map[string]int
		senderFault map[string]bool
		wantN       int
		wantFailed  []string
		wantCalls   int
	}{
		{name: "all succeed in three chunks", wantN: 25, wantCalls: 3},
		{name: "a server fault is retried", fail: map[string]int{"rh3": 1, "rh17": 2}, wantN: 25, wantCalls: 6},
		{name: "a server fault that persists is reported", fail: map[string]int{"rh3": 9}, wantN: 24, wantFailed: []string{"m3"}, wantCalls: 5},
		{name: "a sender fault is not retried", fail: map[string]int{"rh20": 9}, senderFault: map[string]bool{"rh20": true}, wantN: 24, wantFailed: []string{"m20"}, wantCalls: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeAPI{fail: tc.fail, senderFault: tc.senderFault}
			if api.fail == nil {
				api.fail = map[string]int{}
			}
			q, err := New(api, Config{QueueARN: "arn:aws:sqs:eu-west-1:111122223333:orders", RetryInitial: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			n, err := q.Delete(t.Context(), fakeRecs(25))
			var failed []string
			var de *mapping.DeleteError
			if errors.As(err, &de) {
				for id := range de.Failed {
					failed = append(failed, id)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			slices.Sort(failed)
			if n != tc.wantN || !slices.Equal(failed, tc.wantFailed) || len(api.calls) != tc.wantCalls {
				t.Fatalf("Delete = %d, failed %v, %d calls; want %d, %v, %d calls", n, failed, len(api.calls), tc.wantN, tc.wantFailed, tc.wantCalls)
			}
			for _, c := range api.calls {
				if len(c) > 10 {
					t.Fatalf("a batch call of %d entries", len(c))
				}
			}
			if api.urlCalls != 1 {
				t.Fatalf("%d GetQueueUrl calls, want 1", api.urlCalls)
			}
		})
	}
}

func TestReceiveRequest(t *testing.T) {
	api := &fakeAPI{}
	q, err := New(api, Config{QueueARN: "arn:aws:sqs:eu-west-1:111122223333:orders", MaxWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Receive(t.Context(), 25, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	in := api.receive
	if aws.ToString(in.QueueUrl) != "https://sqs.example/111122223333/orders" || in.MaxNumberOfMessages != 10 || in.WaitTimeSeconds != 2 ||
		!slices.Equal(in.MessageSystemAttributeNames, []types.MessageSystemAttributeName{"All"}) || !slices.Equal(in.MessageAttributeNames, []string{"All"}) {
		t.Fatalf("ReceiveMessage input = %+v", in)
	}
	vt, err := q.VisibilityTimeout(t.Context())
	if err != nil || vt != 45*time.Second {
		t.Fatalf("VisibilityTimeout = %s, %v", vt, err)
	}
	if err := q.SetVisibility(t.Context(), fakeRecs(3), 0); err != nil {
		t.Fatal(err)
	}
}
