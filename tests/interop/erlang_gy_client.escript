#!/usr/bin/env escript
%% -*- erlang -*-
%%! -noshell
%%
%% A Gy client on Erlang/OTP's `diameter` application, a Diameter stack nobody in this
%% project wrote, used as an independent peer against the OCS.
%%
%% It compiles the credit-control dictionary (rfc4006_cc.dia beside this script) with
%% diameter_make, connects over TCP (CER/CEA by OTP), then sends CCR-I, CCR-U and CCR-T for
%% one subscriber and rating group. Every CCA goes through OTP's decoder for the dictionary's
%% CCA grammar: any decode error (missing required AVP, unknown mandatory AVP, bad length,
%% too many of an AVP...) lands in #diameter_packet.errors and fails the run, as do a
%% Result-Code other than 2001 and a missing Granted-Service-Unit. Prints one line per check
%% and exits 0 only when every check held.
%%
%%   erlang_gy_client.escript PORT WORKDIR [IMSI]

-mode(compile).

-include_lib("diameter/include/diameter.hrl").

%% diameter_app callbacks (the service calls this module).
-export([peer_up/3, peer_down/3, pick_peer/4, prepare_request/3, prepare_retransmit/3,
         handle_answer/4, handle_error/4, handle_request/3]).

-define(SVC, gy_client).
-define(HOST, "pcef.erlang.test").
-define(REALM, "erlang.test").
-define(DEST_REALM, "home.test").
-define(TIMEOUT, 5000).

main([Port, Dir]) ->
    main([Port, Dir, "001010000000001"]);
main([Port, Dir, Imsi]) ->
    try
        run(list_to_integer(Port), Dir, Imsi)
    catch
        C:E:St ->
            check("client ran to the end", false, {C, E, St})
    end,
    Failed = length([x || {fail, _} <- get_checks()]),
    io:format("~b failed~n", [Failed]),
    halt(if Failed == 0 -> 0; true -> 1 end);
main(_) ->
    io:format("usage: erlang_gy_client.escript PORT WORKDIR [IMSI]~n"),
    halt(2).

run(Port, Dir, Imsi) ->
    Dict = compile_dictionary(Dir),
    ok = diameter:start(),
    ok = diameter:start_service(?SVC, service(Dict)),
    true = diameter:subscribe(?SVC),
    {ok, _} = diameter:add_transport(?SVC, {connect, transport(Port)}),
    receive
        #diameter_event{service = ?SVC, info = {up, _Ref, _Peer, _Caps, Cea}} ->
            check("CER/CEA: the connection is up", true, result_code(Cea))
    after ?TIMEOUT ->
        erlang:error(no_capabilities_exchange)
    end,
    Session = diameter:session_id(?HOST),
    % CCR-I: open the session, ask for units of rating group 1.
    ask("CCR-I", 1, 0, Session,
        [{'Subscription-Id',
          [#{'Subscription-Id-Type' => 1, 'Subscription-Id-Data' => Imsi}]},
         {'Multiple-Services-Indicator', 1}]
        ++ mscc([{'Requested-Service-Unit', [#{}]}])),
    % CCR-U: report usage, ask again.
    ask("CCR-U", 2, 1, Session,
        mscc([{'Requested-Service-Unit', [#{}]},
              {'Used-Service-Unit', [#{'CC-Total-Octets' => [500000]}]}])),
    % CCR-T: final usage; no new grant is expected.
    ask("CCR-T", 3, 2, Session,
        [{'Termination-Cause', 1}]
        ++ mscc([{'Used-Service-Unit', [#{'CC-Total-Octets' => [100000]}]}])),
    diameter:stop_service(?SVC),
    ok.

%% One MSCC for rating group 1 with the given members.
mscc(Members) ->
    [{'Multiple-Services-Credit-Control', [maps:from_list([{'Rating-Group', [1]} | Members])]}].

%% Sends a CCR of type Type and number N, and checks the CCA.
ask(What, Type, N, Session, Avps) ->
    Ccr = ['CCR',
           {'Session-Id', Session},
           {'Origin-Host', ?HOST},
           {'Origin-Realm', ?REALM},
           {'Destination-Realm', ?DEST_REALM},
           {'Auth-Application-Id', 4},
           {'Service-Context-Id', "32251@3gpp.org"},
           {'CC-Request-Type', Type},
           {'CC-Request-Number', N}
           | Avps],
    case diameter:call(?SVC, cc, Ccr, [{timeout, ?TIMEOUT}]) of
        #diameter_packet{errors = Errors, msg = ['CCA' | Cca]} ->
            check(What ++ ": CCA decodes without errors under the CCA grammar",
                  Errors == [], Errors),
            check_cca(What, Type, N, Session, Cca);
        Other ->
            check(What ++ ": a CCA", false, Other)
    end.

check_cca(What, Type, N, Session, Cca) ->
    check(What ++ ": Result-Code 2001", maps:get('Result-Code', Cca, none) == 2001,
          maps:get('Result-Code', Cca, none)),
    check(What ++ ": Session-Id",
          text(maps:get('Session-Id', Cca, "")) == text(Session),
          maps:get('Session-Id', Cca, none)),
    check(What ++ ": Auth-Application-Id 4", maps:get('Auth-Application-Id', Cca, none) == 4,
          maps:get('Auth-Application-Id', Cca, none)),
    check(What ++ ": CC-Request-Type", maps:get('CC-Request-Type', Cca, none) == Type,
          maps:get('CC-Request-Type', Cca, none)),
    check(What ++ ": CC-Request-Number", maps:get('CC-Request-Number', Cca, none) == N,
          maps:get('CC-Request-Number', Cca, none)),
    Msccs = maps:get('Multiple-Services-Credit-Control', Cca, []),
    check(What ++ ": one MSCC", length(Msccs) == 1, Msccs),
    [check_mscc(What, Type, M) || M <- Msccs],
    ok.

%% RFC 4006 §8.16: the MSCC answers rating group 1 with its own Result-Code; every request
%% but the last is granted units (RFC 4006 §5.1.2: none are granted on termination).
check_mscc(What, Type, M) ->
    check(What ++ ": MSCC Rating-Group 1", maps:get('Rating-Group', M, []) == [1],
          maps:get('Rating-Group', M, none)),
    check(What ++ ": MSCC Result-Code 2001", maps:get('Result-Code', M, []) == [2001],
          maps:get('Result-Code', M, none)),
    Gsu = maps:get('Granted-Service-Unit', M, []),
    case Type of
        3 ->
            check(What ++ ": no Granted-Service-Unit on termination", Gsu == [], Gsu);
        _ ->
            Octets = case Gsu of
                         [G] -> maps:get('CC-Total-Octets', G, []);
                         _ -> []
                     end,
            check(What ++ ": Granted-Service-Unit with CC-Total-Octets",
                  case Octets of [O] -> O > 0; _ -> false end, Gsu)
    end.

%% Compiles rfc4006_cc.dia (beside this script) into Dir and loads it.
compile_dictionary(Dir) ->
    Dia = filename:join(filename:dirname(escript:script_name()), "rfc4006_cc.dia"),
    ok = diameter_make:codec(Dia, [{outdir, Dir}]),
    {ok, Mod} = compile:file(filename:join(Dir, "rfc4006_cc"),
                             [{outdir, Dir}, return_errors, report_errors]),
    true = code:add_patha(Dir),
    {module, Mod} = code:load_file(Mod),
    Mod.

service(Dict) ->
    [{'Origin-Host', ?HOST},
     {'Origin-Realm', ?REALM},
     {'Vendor-Id', 0},
     {'Product-Name', "OTP diameter"},
     {'Origin-State-Id', diameter:origin_state_id()},
     {'Auth-Application-Id', [4]},
     {decode_format, map},
     {string_decode, true},
     {application, [{alias, cc},
                    {dictionary, Dict},
                    {module, ?MODULE},
                    % Hand answers with decode errors to handle_answer/4 (the default
                    % drops them), so that the errors can be checked.
                    {answer_errors, callback}]}].

transport(Port) ->
    [{transport_module, diameter_tcp},
     {transport_config, [{raddr, {127, 0, 0, 1}}, {rport, Port}, {reuseaddr, true}]},
     {connect_timer, 1000}].

%% A string, binary or iolist as a binary.
text(S) -> iolist_to_binary(S).

result_code(#diameter_packet{msg = Msg}) when is_list(Msg) ->
    result_code(Msg);
result_code(['CEA' | Avps]) when is_map(Avps) ->
    maps:get('Result-Code', Avps, none);
result_code(Other) ->
    Other.

check(What, Ok, Detail) ->
    put(checks, [{if Ok -> ok; true -> fail end, What} | get_checks()]),
    case Ok of
        true -> io:format("ok   ~s~n", [What]);
        false -> io:format("FAIL ~s: ~0p~n", [What, Detail])
    end.

get_checks() ->
    case get(checks) of
        undefined -> [];
        L -> L
    end.

%% diameter_app callbacks

peer_up(_Svc, _Peer, State) -> State.

peer_down(_Svc, _Peer, State) -> State.

pick_peer([Peer | _], _, _Svc, _State) -> {ok, Peer}.

prepare_request(Pkt, _Svc, _Peer) -> {send, Pkt}.

prepare_retransmit(Pkt, _Svc, _Peer) -> {send, Pkt}.

handle_answer(Pkt, _Request, _Svc, _Peer) -> Pkt.

handle_error(Reason, _Request, _Svc, _Peer) -> {error, Reason}.

handle_request(_Pkt, _Svc, _Peer) -> discard.
