// Package invoke is the home of esmd's function invokers: the ways esmd calls
// the function of a mapping with an event. Each implementation lives in its
// own subpackage and satisfies mapping.Invoker:
//
//   - httpfunc POSTs the event to an HTTP endpoint;
//   - lambdafunc calls the Lambda Invoke API (AWS, LocalStack, the Runtime
//     Interface Emulator);
//   - runtimeapi hosts the Lambda Runtime API and runs handler processes;
//   - natsfunc sends a NATS request;
//   - execfunc runs a command per event.
//
// This package holds the small pieces they share: reading Lambda's error
// object and building the function errors every invoker reports alike.
package invoke
