Feature: gateway
  Scenario: versions are listed
    Given the gateway
    Then versions are listed
