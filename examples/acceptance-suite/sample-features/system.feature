Feature: The sample system through its gateway
  Scenario: the gateway lists its versions
    When I GET /versions
    Then the status is 200
    And the body contains "v1"

  Scenario: a user's roles come from the role service
    When I GET /whoami/1
    Then the status is 200
    And the body contains "Ada Lovelace"
    And the body contains "admin"

  Scenario: an unknown user is not found
    When I GET /users/9
    Then the status is 404
