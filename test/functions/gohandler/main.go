// Command gohandler is a Lambda function written with aws-lambda-go
// (lambda.Start), for esmd's runtime and Lambda invoker tests. What it does
// with an event is driven by the event (see package functions).
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/esmd-dev/esmd/test/functions"
)

func main() {
	lambda.Start(functions.Handle)
}
