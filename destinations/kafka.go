package destinations

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/internal/names"
	"github.com/esmd-dev/esmd/mapping"
)

// Kafka timeouts: a Send that cannot reach a broker or get the acks of all
// in-sync replicas within these fails, and the engine retries it.
const (
	kafkaDialTimeout  = 5 * time.Second
	kafkaWriteTimeout = 10 * time.Second
	kafkaReadTimeout  = 10 * time.Second
)

// Kafka publishes failure records to a Kafka topic with segmentio/kafka-go.
// The message value is the failure record's JSON (without the records, as
// for SQS and SNS); the key is "<mapping UUID>/<shard id>", so one shard's
// failures land in one partition, in order. A write is acknowledged by all
// in-sync replicas (acks=all) before Send returns nil.
//
// The topic must exist: esmd does not create it. A missing topic, like an
// unreachable broker, is a transient error the engine retries.
//
// The writer is built on the first Send and released by Close. Kafka is safe
// for concurrent use; concurrent Sends may share one produce request.
type Kafka struct {
	brokers []string
	topic   string
	log     *slog.Logger
	refused refusals

	mu     sync.Mutex
	w      *kafka.Writer // nil until the first Send
	tr     *kafka.Transport
	closed bool
}

var _ mapping.Destination = (*Kafka)(nil)

// NewKafka returns the destination of target,
// kafka://HOST:PORT[,HOST:PORT...]/TOPIC. It does no I/O: brokers are
// contacted on the first Send.
func NewKafka(target string, logger *slog.Logger) (*Kafka, error) {
	rest, ok := strings.CutPrefix(target, "kafka://")
	hosts, topic, _ := strings.Cut(rest, "/")
	if !ok || hosts == "" || !names.KafkaTopic.MatchString(topic) {
		return nil, fmt.Errorf("%w %q: want kafka://HOST:PORT[,HOST:PORT]/TOPIC", ErrInvalidTarget, target)
	}
	var brokers []string
	for _, h := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("%w %q: broker %q: want HOST:PORT", ErrInvalidTarget, target, h)
		}
		brokers = append(brokers, h)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Kafka{
		brokers: brokers,
		topic:   topic,
		log:     logger.With("destination", "kafka", "topic", topic),
	}, nil
}

// Brokers returns the bootstrap broker addresses, and Topic the topic.
func (d *Kafka) Brokers() []string { return append([]string(nil), d.brokers...) }

// Topic returns the topic failure records are written to.
func (d *Kafka) Topic() string { return d.topic }

// Send writes f in one produce attempt (the writer's own retries are off:
// the engine retries) and waits for acks from all in-sync replicas. It
// blocks for at most about ten seconds, less when ctx ends first. After
// Close it fails with ErrClosed.
func (d *Kafka) Send(ctx context.Context, f *event.Failure) error {
	body, err := marshal(f)
	if err != nil {
		return fmt.Errorf("destination kafka %s: encode: %w", d.topic, err)
	}
	w, err := d.writer()
	if err != nil {
		return fmt.Errorf("destination kafka %s: %w", d.topic, err)
	}
	msg := kafka.Message{
		Key:     []byte(groupID(f)),
		Value:   body,
		Headers: []kafka.Header{{Key: "content-type", Value: []byte("application/json")}},
	}
	if err := w.WriteMessages(ctx, msg); err != nil {
		// kafka-go keeps a broker's failed connection and its metadata
		// until the metadata expires; start afresh so that the engine's
		// next attempt reaches a broker that is back.
		d.resetConns()
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == 1 && werrs[0] != nil {
			err = werrs[0]
		}
		if errors.Is(err, kafka.MessageSizeTooLarge) {
			d.refused.warn(ctx, d.log, "failure record refused: over the topic's message size limit", f, body, "bytes", len(body))
			return fmt.Errorf("destination kafka %s: write: %w", d.topic, tooLarge(len(body), 0))
		}
		return fmt.Errorf("destination kafka %s: write: %w", d.topic, err)
	}
	d.log.DebugContext(ctx, "failure record sent", logAttrs(f)...)
	return nil
}

// writer returns the writer, building it on first use.
func (d *Kafka) writer() (*kafka.Writer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	if d.w == nil {
		d.tr = &kafka.Transport{
			DialTimeout: kafkaDialTimeout,
			ClientID:    "esmd",
		}
		d.w = &kafka.Writer{
			Addr:         kafka.TCP(d.brokers...),
			Topic:        d.topic,
			Balancer:     &kafka.Hash{},
			MaxAttempts:  1,
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: time.Millisecond,
			WriteTimeout: kafkaWriteTimeout,
			ReadTimeout:  kafkaReadTimeout,
			Transport:    d.tr,
		}
	}
	return d.w, nil
}

// resetConns drops the transport's connection pools; Sends in flight keep
// theirs.
func (d *Kafka) resetConns() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tr != nil {
		d.tr.CloseIdleConnections()
	}
}

// Close flushes and closes the writer, if one was built, and makes later
// Sends fail with ErrClosed. It is idempotent and safe to call concurrently
// with Send.
func (d *Kafka) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if d.w == nil {
		return nil
	}
	err := d.w.Close()
	d.tr.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("destination kafka %s: close: %w", d.topic, err)
	}
	return nil
}
