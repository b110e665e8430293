Feature: API gateway
  Scenario: versions are listed
    When I GET /versions
    Then the status is 200
    And the body contains "v1"
