# bash completion for hozo(1). Installed as share/bash-completion/completions/hozo.
#
# Commands and options come from `hozo [COMMAND...] --help` (so new commands need no edit
# here), job names from `hozo [-c FILE] jobs list --names` (the config given on the line, or
# $HOZO_CONFIG, or the default). A command whose help lists a NAME positional gets job names,
# FILE gets file names.

# The command path typed so far (e.g. "jobs run") and the config file given, from words 1..cword-1.
_hozo_parse_line() {
    local i w levels next children
    _hozo_path=()
    _hozo_cfg=()
    children=$(_hozo_help_section Subcommands)
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
            -c | --config)
                ((i++))
                _hozo_cfg=(-c "${COMP_WORDS[i]}")
                ;;
            --config=*) _hozo_cfg=(-c "${w#--config=}") ;;
            --state | --dir | --count | --dataset | --snapshot | --to | --confirm) ((i++)) ;;
            -n) [[ ${_hozo_path[*]} == history ]] && ((i++)) ;; # --count there, --dry-run elsewhere
            -*) ;;
            *)
                if [[ $'\n'$children$'\n' == *$'\n'"$w"$'\n'* ]]; then
                    _hozo_path+=("$w")
                    children=$(_hozo_help_section Subcommands "${_hozo_path[@]}")
                fi
                ;;
        esac
    done
}

# The first words of the lines in one section ("Subcommands", "Options", "Positionals") of
# `hozo PATH... --help`.
_hozo_help_section() {
    local section=$1 line in=0
    shift
    while IFS= read -r line; do
        if [[ $line == "$section:" ]]; then
            in=1
        elif ((in)) && [[ -z $line || $line != " "* ]]; then
            in=0
        elif ((in)); then
            line=${line#"${line%%[! ]*}"}
            printf '%s\n' "${line%% *}"
        fi
    done < <("$_hozo_bin" "$@" --help 2>/dev/null)
}

_hozo() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    _hozo_bin=${COMP_WORDS[0]}
    [[ $_hozo_bin == */* && -x $_hozo_bin ]] || _hozo_bin=hozo
    COMPREPLY=()

    case $prev in
        -c | --config | --state)
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return
            ;;
        --dir)
            mapfile -t COMPREPLY < <(compgen -d -- "$cur")
            return
            ;;
        --count | --dataset | --snapshot | --to | --confirm) return ;;
    esac

    _hozo_parse_line
    [[ $prev == -n && ${_hozo_path[*]} == history ]] && return
    local words=() opt
    if [[ $cur == -* ]]; then
        # This command's options, and the global ones (they may come anywhere).
        local globals=
        ((${#_hozo_path[@]})) && globals=$(_hozo_help_section Options)
        for opt in $(_hozo_help_section Options "${_hozo_path[@]}") $globals; do
            opt=${opt//,/ }
            words+=($opt)
        done
        mapfile -t COMPREPLY < <(compgen -W "${words[*]}" -- "$cur" | awk '!seen[$0]++')
        return
    fi
    local subcommands positionals
    subcommands=$(_hozo_help_section Subcommands "${_hozo_path[@]}")
    if [[ -n $subcommands ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$subcommands" -- "$cur")
        return
    fi
    positionals=$(_hozo_help_section Positionals "${_hozo_path[@]}")
    if [[ $'\n'$positionals$'\n' == *$'\n'NAME$'\n'* ]]; then
        local names
        names=$("$_hozo_bin" "${_hozo_cfg[@]}" -q jobs list --names 2>/dev/null)
        mapfile -t COMPREPLY < <(compgen -W "$names" -- "$cur")
    elif [[ $'\n'$positionals$'\n' == *$'\n'FILE$'\n'* ]]; then
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    fi
}

complete -F _hozo hozo
