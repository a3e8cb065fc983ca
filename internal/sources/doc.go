// Package sources owns the consumers of event source mappings
// (model.Source): for each enabled mapping, a connection to its broker
// (RabbitMQ, Kafka, NATS JetStream) that reads messages, gives the
// mapping's function batches of them, and acknowledges each message only
// once the function succeeded with it or it went to the dead-letter
// destination.
//
// The consumers run on the leader, one Manager per term of office (see
// internal/node): the leader already runs the dispatcher and the
// scheduler, one consumer per mapping keeps a queue's or a partition's
// order without coordinating servers, and a leader change hands every
// consumer over at once (the old leader's connections close, so what
// they held unacknowledged goes back to the broker for the new leader's).
//
// Guarantees:
//   - At least once: a message is acknowledged (RabbitMQ ack, Kafka offset
//     commit, JetStream ack) after its batch's invocation succeeded with
//     it and that invocation's record is committed (or held where a
//     restart finds it: see service.AddRecordAndWait), or after it was
//     stored as a dead letter (or published to the broker's dead-letter
//     queue, topic or subject, confirmed). So every message acknowledged
//     has a record of a successful run, whatever server dies.
//   - A handler may answer {"batchItemFailures": [{"itemIdentifier": ID}]}:
//     only those messages are retried. An answer naming an ID not in the
//     batch fails the whole batch, as Lambda does.
//   - Retries: a failed message is sent again after RetryDelay, doubling
//     each time, Retries times; then it is dead-lettered and the stream
//     goes on. An invocation the platform could not run (no capacity, a
//     concurrency limit) is tried again without using up a retry.
//   - Order: with Concurrency 1 a mapping has one batch in flight, so
//     a RabbitMQ queue's, a Kafka partition's and a subject's messages run
//     in order. With Concurrency N, Kafka partitions are spread over N
//     lanes (one partition stays on one lane, in order); RabbitMQ and NATS
//     messages go round-robin and their order is not kept.
//   - Duplicates happen only within the at-least-once window: a message
//     whose run succeeded but whose acknowledgement was lost (a leader
//     change, a broker restart) is delivered again; the broker's
//     redelivery mark (RabbitMQ's redelivered, JetStream's delivery
//     count, a Kafka offset at or before the last one the previous term
//     reported) is counted as Redelivered in the mapping's progress.
package sources
