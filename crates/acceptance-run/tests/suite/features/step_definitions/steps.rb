require 'net/http'
require 'uri'

When(/^I GET (\S+)$/) do |path|
  @response = Net::HTTP.get_response(URI(ENV.fetch('API_GATEWAY_URL') + path))
end

Then(/^the status is (\d+)$/) do |status|
  raise "status #{@response.code}, expected #{status}" unless @response.code == status
end

Then(/^the body contains "([^"]*)"$/) do |text|
  raise "body does not contain #{text}" unless @response.body.include?(text)
end
