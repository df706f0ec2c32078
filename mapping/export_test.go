package mapping

// LaneFor is laneFor, for the tests of package mapping_test.
var LaneFor = laneFor
